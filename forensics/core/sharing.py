"""Sharing one case file between processes: a notebook, the CLI, saved queries.

DuckDB lets one process open a file read-write, or any number open it read-only, never
both. A case therefore holds a connection only while an operation runs: reads open the
file read-only, writes take the case's write lock (``flock`` on the sibling file
``<case>.lock``, which also records who holds it) and then open it read-write. Both wait
a bounded time for the file (``FORENSICS_LOCK_WAIT`` seconds, 60 by default), say on
stderr that they are waiting, and name the holder (pid and command) when the wait runs out.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with write_lock(folder / "c.duckdb") as lock:
...     holder(folder / "c.duckdb")["pid"] == os.getpid()
True
>>> holder(folder / "c.duckdb") is None
True
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import duckdb

from forensics.core.errors import CaseError, CaseLockedError, ReadOnlyCaseError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: DuckDB's own lock is the only guard
    fcntl = None  # type: ignore[assignment]

DEFAULT_WAIT_S = 60.0
POLL_S = 0.1
Progress = Callable[[str], None]


def lock_wait(seconds: float | None = None) -> float:
    """How long to wait for the case file: ``seconds``, else ``$FORENSICS_LOCK_WAIT``."""
    if seconds is not None:
        return max(0.0, float(seconds))
    raw = os.environ.get("FORENSICS_LOCK_WAIT", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_WAIT_S
    except ValueError:
        return DEFAULT_WAIT_S


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def stderr_progress(message: str) -> None:
    """The default progress while waiting: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def command_of(pid: int) -> str:
    """The command line of process ``pid`` (Linux ``/proc``), or ``""`` when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:200]


def _me(action: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "command": command_of(os.getpid()) or " ".join(sys.argv),
            "action": action, "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def holder(path: Path) -> dict[str, Any] | None:
    """Who holds the write lock of the case at ``path`` now (pid, command, action,
    since), or None when nobody does."""
    lock = lock_path(path)
    if fcntl is None or not lock.exists():
        return None
    try:
        with lock.open("r+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                try:
                    found = json.loads(fh.read() or "{}")
                except json.JSONDecodeError:
                    found = {}
                return found if isinstance(found, dict) else {}
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None
    except OSError:
        return None


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another process"
    text = f"pid {info.get('pid', '?')}"
    if info.get("command"):
        text += f" ({info['command']})"
    if info.get("action"):
        text += f", {info['action']}"
    if info.get("since"):
        text += f" since {info['since']}"
    return text


class _Waiter:
    """Bounded waiting with a progress line now and then."""

    def __init__(self, path: Path, wait: float | None, progress: Progress | None,
                 what: str) -> None:
        self.path, self.what = path, what
        self.limit = lock_wait(wait)
        self.progress = progress or stderr_progress
        self.start = time.monotonic()
        self.next_note = min(1.0, self.limit / 2)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def tick(self, who: str) -> bool:
        """Sleep a little; False once the wait has run out."""
        if self.elapsed() >= self.limit:
            return False
        if self.elapsed() >= self.next_note:
            self.progress(f"forensics: waiting for {self.path.name} ({self.what}): held by "
                          f"{who}; {self.elapsed():.0f} s of {self.limit:.0f} s")
            self.next_note = self.elapsed() + 5.0
        time.sleep(POLL_S)
        return True

    def fail(self, who: str, detail: str = "") -> CaseLockedError:
        return CaseLockedError(
            f"case file {self.path} is busy: {who} has it open{detail}; gave up after "
            f"{self.elapsed():.0f} s waiting to {self.what}",
            hint="wait for that process to finish (or close its case / stop it), then run "
                 "again; FORENSICS_LOCK_WAIT sets how many seconds to wait")


@contextmanager
def write_lock(path: Path, action: str = "write", wait: float | None = None,
               progress: Progress | None = None) -> Iterator[IO[str] | None]:
    """Hold the case's write lock while the block runs: one writer at a time across
    processes, waiting at most ``wait`` seconds for the current one."""
    lock = lock_path(path)
    try:
        fh: IO[str] | None = lock.open("a+") if fcntl is not None else None
    except OSError:
        fh = None          # a folder we cannot write to: DuckDB's own lock still guards
    if fh is None:
        yield None
        return
    try:
        waiter = _Waiter(path, wait, progress, action)
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                who = describe(_read_record(lock))
                if not waiter.tick(who):
                    raise waiter.fail(who) from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_me(action)))
        fh.flush()
        try:
            yield fh
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def writer_active(path: Path) -> bool:
    """Whether a writer holds (or has just taken) the case's write lock: its record is in
    the lock file while it holds it. Cheap (one ``stat``): readers poll it."""
    try:
        return lock_path(path).stat().st_size > 0
    except OSError:
        return False


def _read_record(lock: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(lock.read_text(encoding="utf-8") or "{}")
    except (OSError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) and found else None


def connect(path: Path, *, read_only: bool, config: dict[str, Any] | None = None,
            wait: float | None = None, progress: Progress | None = None,
            action: str = "") -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that waits (bounded) while another process holds the file."""
    waiter = _Waiter(path, wait, progress, action or ("read" if read_only else "write"))
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            text = str(exc)
            if "lock" not in text.lower():
                raise _open_error(path, exc) from exc
            who = _holder_from_duckdb(path, text)
            if not waiter.tick(who):
                mode = " read-write" if "read-only mode" in text else ""
                raise waiter.fail(who, mode) from exc
        except duckdb.Error as exc:
            raise _open_error(path, exc) from exc


def _open_error(path: Path, exc: duckdb.Error) -> CaseError:
    text = str(exc)
    if "different configuration" in text:
        return CaseError(f"case file {path} is open in this process on a connection with "
                         f"other settings: {text}",
                         hint="call release() on the Case that holds case.con, then retry")
    if isinstance(exc, duckdb.IOException):
        if "permission" in text.lower() or "read-only" in text.lower():
            return ReadOnlyCaseError(f"case file {path} cannot be opened for writing: {text}",
                                     hint="open it with read_only=True (CLI: --read-only)")
        return CaseError(f"cannot open case file {path}: {text}")
    return CaseError(f"{path} is not a DuckDB case file: {exc}")


def _holder_from_duckdb(path: Path, text: str) -> str:
    """Name the process DuckDB says holds the file (its message carries the pid)."""
    import re

    match = re.search(r"PID (\d+)", text)
    record = _read_record(lock_path(path)) if path.exists() else None
    if match:
        pid = int(match.group(1))
        if record and record.get("pid") == pid:
            return describe(record)
        return describe({"pid": pid, "command": command_of(pid)})
    return describe(record)

"""The case's work folder: snapshots of files being loaded and DuckDB's spill files.

Each process that loads into a case gets its own folder ``<case>.work/<pid>-<token>/``,
holding an exclusive lock on ``.lock`` inside it for as long as the process lives. A
folder whose lock can be taken belongs to a process that is gone (killed mid-load, say):
:func:`clean` removes it, so a kill leaves no spill files behind once the case is opened
again, and a folder in use by another process is never touched.

>>> import tempfile
>>> root = Path(tempfile.mkdtemp())
>>> mine = session_dir(root / "case.duckdb")
>>> mine.parent.name, mine.is_dir()
('case.duckdb.work', True)
>>> clean(root / "case.duckdb")   # this process still holds its folder
0
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import IO

_HELD: dict[Path, tuple[Path, IO[bytes]]] = {}


# Characters DuckDB reads as a file pattern (or a home folder) in a path it is given.
PATTERN_CHARS = re.compile(r"[*?\[\]{}'\\]|(^|/)~")


def root_for(case_path: Path) -> Path:
    """``incident.duckdb`` -> ``incident.duckdb.work`` beside it; in the system's temp
    folder for an in-memory case, or when the case's folder has a name DuckDB would read
    as a pattern (``[x]``, ``*``)."""
    case_path = Path(case_path)
    if str(case_path) in ("", ":memory:"):
        return Path(tempfile.gettempdir()) / f"forensics-{os.getuid()}-memory.work"
    case_path = case_path.absolute()
    beside = case_path.with_name(case_path.name + ".work")
    if not PATTERN_CHARS.search(str(beside)):
        return beside
    tag = hashlib.sha256(str(case_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"forensics-{os.getuid()}-{tag}.work"


def session_dir(case_path: Path) -> Path:
    """This process's folder under the case's work folder, created (and locked) once."""
    root = root_for(case_path)
    held = _HELD.get(root)
    if held is not None and held[0].is_dir() and held[1].closed is False and \
            _pid_of(held[0]) == os.getpid():
        return held[0]
    folder = root / f"{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / ".lock").open("wb")
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD[root] = (folder, lock)
    atexit.register(_release, folder, lock)
    return folder


def _release(folder: Path, lock: IO[bytes]) -> None:
    """At a clean exit the folder goes at once (a killed process leaves it to clean)."""
    shutil.rmtree(folder, ignore_errors=True)
    lock.close()


def _pid_of(folder: Path) -> int:
    try:
        return int(folder.name.split("-", 1)[0])
    except ValueError:
        return -1


def clean(case_path: Path) -> int:
    """Remove the folders left by processes that are gone; returns how many."""
    root = root_for(case_path)
    if not root.is_dir():
        return 0
    mine = _HELD.get(root, (None, None))[0]
    removed = 0
    for folder in root.iterdir():
        if not folder.is_dir() or folder == mine:
            continue
        if _abandoned(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _abandoned(folder: Path) -> bool:
    """True when no live process holds the folder's lock (or it has none)."""
    try:
        with (folder / ".lock").open("ab") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
    except OSError:
        return True


__all__ = ["clean", "root_for", "session_dir"]

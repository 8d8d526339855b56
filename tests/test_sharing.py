"""One case shared by real processes: a notebook kernel holding a Case, the CLI reading,
other processes loading; and Ctrl-C in the middle of a load.

Each "kernel" is a Python subprocess that opens the case the way a notebook does and then
waits for a line on stdin, as a kernel waits between cells.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

import forensics
from forensics.core import sharing
from forensics.core.errors import CaseLockedError
from forensics.ingest import load as load_mod
from forensics.ingest import mapping as mapping_mod
from tests.conftest import REPO, event, write_jsonl

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
CLI = [sys.executable, "-c", "from forensics.cli import main; main()"]


def cli(*args: str, wait: float = 120.0, timeout: float = 300.0) -> tuple[int, dict[str, Any], str]:
    out = subprocess.run([*CLI, *args, "--json"], capture_output=True, text=True,
                         timeout=timeout, env={**ENV, "FORENSICS_LOCK_WAIT": str(wait)})
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


class Kernel:
    """A Python process that runs cells sent on stdin, one line each, printing a reply."""

    def __init__(self, setup: str) -> None:
        code = textwrap.dedent("""
            import json, sys
            import forensics
            {setup}
            print("ready", flush=True)
            for line in sys.stdin:
                try:
                    reply = eval(line)
                except Exception as exc:
                    reply = {{"error": type(exc).__name__, "message": str(exc)}}
                print(json.dumps(reply, default=str), flush=True)
        """).format(setup=setup)
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=ENV)
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def run(self, expr: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(expr + "\n")
        self.proc.stdin.flush()
        return json.loads(self.readline())

    def close(self) -> None:
        self.proc.communicate("", timeout=60)


def _events(path: Path, start: int, n: int) -> Path:
    return write_jsonl(path, [event(i) for i in range(start, start + n)])


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    path = tmp_path / "case.duckdb"
    with forensics.open(path) as case:
        case.load(_events(tmp_path / "first.jsonl", 0, 50))
    return path


def test_notebook_kernel_open_while_cli_reads_and_another_kernel_loads(
        shared: Path, tmp_path: Path) -> None:
    kernel = Kernel(f"case = forensics.open({str(shared)!r})")
    try:
        assert kernel.run("case.count('events')") == 50       # a cell ran; the case is open
        code, doc, _ = cli("summary", str(shared), wait=5)
        assert code == 0 and doc["ok"] is True
        code, doc, _ = cli("query", str(shared), "evidence_inventory", wait=5)
        assert code == 0 and doc["ok"] is True and len(doc["rows"]) == 1
        second = Kernel(f"case = forensics.open({str(shared)!r})")
        try:
            more = _events(tmp_path / "second.jsonl", 1000, 30)
            loaded = second.run(f"case.load({str(more)!r}).rows()[0]['rows_loaded']")
            assert loaded == 30
        finally:
            second.close()
        # the first kernel's next cell sees what the second one loaded
        assert kernel.run("case.count('events')") == 80
        assert kernel.run("case.count('evidence')") == 2
    finally:
        kernel.close()


def test_two_loads_at_once_are_serialised_and_both_land(shared: Path, tmp_path: Path) -> None:
    files = [_events(tmp_path / f"part{k}.jsonl", 10_000 * (k + 1), 2_000) for k in range(2)]
    procs = [subprocess.Popen([*CLI, "load", str(shared), str(f), "--json"], env={
        **ENV, "FORENSICS_LOCK_WAIT": "120"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for f in files]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    for stdout, _ in outs:
        assert json.loads(stdout)["files"][0]["rows_loaded"] == 2_000
    with forensics.open(shared, read_only=True) as case:
        assert case.count("evidence") == 3
        assert case.count("events") == 50 + 4_000


def _wait_for_holder(path: Path, action: str, proc: subprocess.Popen[str],
                     seconds: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = sharing.holder(path)
        if info and info.get("action") == action:
            return info
        assert proc.poll() is None, "the process ended before it took the lock"
        time.sleep(0.05)
    raise AssertionError(f"no process took the write lock to {action}")


def _big_events(path: Path, n: int) -> Path:
    """A large events file written by DuckDB (set-based, fast)."""
    duckdb.sql(f"""COPY (SELECT 'big' || i AS event_id,
                         strftime(TIMESTAMP '2026-03-01' + to_seconds(i), '%Y-%m-%dT%H:%M:%SZ')
                             AS ts,
                         'u' || (i % 997) AS user_id, 'doc_qa' AS feature,
                         'question ' || i AS input_text,
                         repeat('an answer with some words ', 8) AS output_text
                  FROM range({int(n)}) t(i)) TO '{path}' (FORMAT json)""")
    return path


def test_readers_wait_for_a_load_and_then_read(shared: Path, tmp_path: Path) -> None:
    big = _big_events(tmp_path / "big.jsonl", 150_000)
    loader = subprocess.Popen([*CLI, "load", str(shared), str(big), "--json"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_holder(shared, "load", loader)
        code, doc, err = cli("summary", str(shared), wait=300)
        assert code == 0 and doc["ok"] is True, doc
        loaded, _ = loader.communicate(timeout=300)
        assert loader.returncode == 0
        assert json.loads(loaded)["files"][0]["rows_loaded"] == 150_000
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.communicate()
    # the reader either ran before the load took the file, or waited and then read
    events = {r["table"]: r for r in doc.get("rows", []) if "table" in r}
    assert events == {} or events["events"]["rows"] in (50, 150_050)
    if "waiting for" in err:
        assert "load" in err


@pytest.mark.slow
def test_a_wait_that_runs_out_names_the_holder(shared: Path, tmp_path: Path) -> None:
    # a kernel that keeps case.con (temp tables between cells) keeps the write lock
    kernel = Kernel(f"case = forensics.open({str(shared)!r}); con = case.con")
    try:
        code, doc, err = cli("load", str(shared), str(_events(tmp_path / "x.jsonl", 500, 5)),
                             wait=1)
        assert code == 1 and doc["type"] == "CaseLockedError"
        assert f"pid {kernel.proc.pid}" in doc["error"] and "hold case.con" in doc["error"]
        assert "FORENSICS_LOCK_WAIT" in doc["hint"]
        assert "waiting for case.duckdb" in err            # progress while it waited
        code, doc, _ = cli("summary", str(shared), wait=1)  # DuckDB's own lock: named too
        assert code == 1 and f"PID {kernel.proc.pid}".lower() in doc["error"].lower()
        kernel.run("case.release()")
        code, doc, _ = cli("load", str(shared), str(tmp_path / "x.jsonl"), wait=5)
        assert code == 0 and doc["files"][0]["rows_loaded"] == 5
    finally:
        kernel.close()


def test_lock_wait_in_python_names_the_holder(shared: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys
        con = duckdb.connect({str(shared)!r})
        print("ready", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        notes: list[str] = []
        with pytest.raises(CaseLockedError) as info:
            sharing.connect(shared, read_only=True, wait=1.5, progress=notes.append)
        assert f"pid {holder.pid}" in str(info.value) and str(shared) in str(info.value)
        assert notes and "waiting for" in notes[0]
    finally:
        holder.communicate("\n", timeout=30)


# -- Ctrl-C ------------------------------------------------------------------------------

def test_sigint_mid_load_ends_in_the_error_shape_and_keeps_nothing(
        shared: Path, tmp_path: Path) -> None:
    big = _big_events(tmp_path / "big.jsonl", 400_000)
    loader = subprocess.Popen([*CLI, "load", str(shared), str(big), "--json"], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_holder(shared, "load", loader)
        time.sleep(1.5)                     # into reading / staging
        loader.send_signal(signal.SIGINT)
        out, err = loader.communicate(timeout=300)
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.communicate()
    if loader.returncode == 0:
        pytest.skip("the load finished before the interrupt arrived (a very fast machine)")
    assert loader.returncode == 130, err[-2000:]
    doc = json.loads(out)
    assert doc == {"ok": False, "error": "interrupted", "type": "interrupted",
                   "hint": doc["hint"]} and "nothing partial" in doc["hint"]
    assert "Traceback" not in err
    with forensics.open(shared) as case:
        assert case.count("evidence") == 1 and case.count("events") == 50
        small = case.load(_events(tmp_path / "after.jsonl", 900, 10)).rows()[0]
        assert small["rows_loaded"] == 10


def _interrupting(real: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise KeyboardInterrupt
    return run


@pytest.mark.parametrize("where", ["staging", "commit"])
def test_interrupt_in_python_leaves_the_case_usable(
        shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """A Jupyter interrupt during staging or in the middle of the commit (after rows went
    into ``events``): rolled back, and the next call on the same Case works."""
    if where == "staging":
        monkeypatch.setattr(mapping_mod, "stage_events", _interrupting(mapping_mod.stage_events))
    else:
        monkeypatch.setattr(load_mod, "_commit_children",
                            _interrupting(load_mod._commit_children))
    case = forensics.open(shared)
    try:
        with pytest.raises(KeyboardInterrupt):
            case.load(_events(tmp_path / "more.jsonl", 2000, 40))
        assert case.count("events") == 50 and case.count("evidence") == 1
        monkeypatch.undo()
        assert case.load(tmp_path / "more.jsonl").rows()[0]["rows_loaded"] == 40
        assert case.count("events") == 90
    finally:
        case.close()


def test_interrupt_with_a_kept_connection_rolls_back(
        shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``case.con`` kept (temp tables between cells), an interrupted load leaves
    that connection out of any transaction, and its temp tables in place."""
    case = forensics.open(shared)
    try:
        case.con.execute("CREATE TEMP TABLE mine AS SELECT 1 AS x")
        monkeypatch.setattr(load_mod, "_commit_children",
                            _interrupting(load_mod._commit_children))
        with pytest.raises(KeyboardInterrupt):
            case.load(_events(tmp_path / "more.jsonl", 2000, 40))
        monkeypatch.undo()
        assert case.con.execute("SELECT count(*) FROM mine").fetchall() == [(1,)]
        assert case.count("events") == 50
        assert case.load(tmp_path / "more.jsonl").rows()[0]["rows_loaded"] == 40
    finally:
        case.close()


def test_cases_of_one_process_share_the_file(shared: Path, tmp_path: Path) -> None:
    """Two notebooks' worth of Cases in one kernel: a kept read connection of one gives
    way to a walled query or a load of the other (DuckDB allows one configuration per
    file in a process), and each sees the other's writes."""
    reader = forensics.open(shared)
    walled_reader = forensics.open(shared, read_only=True)
    writer = forensics.open(shared)
    try:
        assert reader.count("events") == 50                  # keeps a read connection
        assert walled_reader.query("evidence_inventory").df.height == 1
        assert reader.count("events") == 50
        more = _events(tmp_path / "more.jsonl", 3000, 7)
        assert writer.load(more).rows()[0]["rows_loaded"] == 7
        assert reader.count("events") == 57 and walled_reader.count("events") == 57
    finally:
        for case in (reader, walled_reader, writer):
            case.close()

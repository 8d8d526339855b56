"""The case file: creation, schema version, migrations, locking, read-only."""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

import forensics
from forensics import case as case_mod
from forensics.core.errors import CaseError, CaseLockedError, LoadError, ReadOnlyCaseError

CANONICAL = {"evidence", "rejects", "events", "retrievals", "moderations", "feedback",
             "changes", "labels", "clusters", "cluster_members", "findings", "meta", "runs"}


def test_open_creates_canonical_tables(tmp_path: Path) -> None:
    c = forensics.open(tmp_path / "new.duckdb")
    tables = {r[0] for r in c.con.execute(
        "SELECT table_name FROM information_schema.tables").fetchall()}
    assert tables >= CANONICAL
    assert c.schema_version == case_mod.SCHEMA_VERSION
    c.close()
    # reopening keeps it, and it is a plain DuckDB file anyone can read
    con = duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == \
        [(str(case_mod.SCHEMA_VERSION),)]
    con.close()


def test_migrations_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forensics.open(tmp_path / "m.duckdb").close()
    base = case_mod.SCHEMA_VERSION
    monkeypatch.setattr(case_mod, "SCHEMA_VERSION", base + 2)
    monkeypatch.setattr(case_mod, "MIGRATIONS", {
        **case_mod.MIGRATIONS,
        base + 1: ["ALTER TABLE events ADD COLUMN tenant VARCHAR"],
        base + 2: ["CREATE TABLE later_table (name VARCHAR, ts TIMESTAMP)"]})
    c = forensics.open(tmp_path / "m.duckdb")
    assert c.schema_version == base + 2
    cols = {r[0] for r in c.con.execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = 'events'").fetchall()}
    assert "tenant" in cols
    c.close()


def test_newer_case_is_refused(tmp_path: Path) -> None:
    forensics.open(tmp_path / "n.duckdb").close()
    con = duckdb.connect(str(tmp_path / "n.duckdb"))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(CaseError, match="newer"):
        forensics.open(tmp_path / "n.duckdb")


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "other.duckdb"))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    with pytest.raises(CaseError, match="not a forensics case"):
        forensics.open(tmp_path / "other.duckdb")


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "junk.duckdb").write_text("hello")
    with pytest.raises(CaseError):
        forensics.open(tmp_path / "junk.duckdb")


def test_locked_case_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.duckdb"
    forensics.open(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r})
            print("ready", flush=True)
            sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(CaseLockedError) as info:
            forensics.open(path, lock_wait=0.5)
        assert str(path) in str(info.value) and f"pid {holder.pid}" in str(info.value)
        assert info.value.hint
    finally:
        holder.communicate("\n", timeout=30)


def test_read_only_file_needs_read_only_open(tmp_path: Path) -> None:
    path = tmp_path / "ro.duckdb"
    c = forensics.open(path)
    c.close()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    try:
        with pytest.raises(ReadOnlyCaseError):
            forensics.open(path)
        ro = forensics.open(path, read_only=True)
        assert ro.count("events") == 0
        with pytest.raises(LoadError, match="read-only"):
            ro.load(path)
        ro.close()
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_read_only_open_of_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="does not exist"):
        forensics.open(tmp_path / "missing.duckdb", read_only=True)


def test_table_names_are_never_sql(tmp_path: Path) -> None:
    """A crafted table name is one (unknown) name, never SQL: evidence stays."""
    from forensics.core.errors import UsageError

    case = forensics.open(tmp_path / "c.duckdb")
    hostile = 'events"; DROP TABLE events; --'
    with pytest.raises(UsageError, match="no table or view"):
        case.table(hostile)
    with pytest.raises(UsageError, match="no table or view"):
        case.count(hostile)
    assert case.count("events") == 0 and case.table("evidence", limit=1).height == 0
    case.close()

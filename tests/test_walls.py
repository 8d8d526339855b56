"""Walls around analyst SQL: saved queries and a read-only ``case.sql`` read the case and
nothing else; evidence tables are append-only for ``case.sql`` on a writable case too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

import forensics
from forensics.core.errors import QueryError
from forensics.core.walls import EVIDENCE_TABLES, walled
from tests.conftest import REPO, event, write_jsonl

HEADER = "-- title: hostile\n-- description: tries to leave the case\n"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    path = tmp_path / "case.duckdb"
    with forensics.open(path) as case:
        case.load(write_jsonl(tmp_path / "ev.jsonl", [event(i) for i in range(20)]))
    with forensics.open(tmp_path / "other.duckdb") as other:
        other.load(write_jsonl(tmp_path / "ev2.jsonl", [event(i) for i in range(100, 105)]))
    (tmp_path / "secret.csv").write_text("token\nsk_live_abc\n", encoding="utf-8")
    return path


def _saved(folder: Path, name: str, sql: str, monkeypatch: pytest.MonkeyPatch,
           header: str = HEADER) -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.sql").write_text(header + sql + "\n", encoding="utf-8")
    monkeypatch.setenv("FORENSICS_QUERIES", str(folder))


def _counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in sorted(EVIDENCE_TABLES)}
    finally:
        con.close()


ESCAPES = {
    "copy_to": "COPY (SELECT * FROM events) TO '{out}'",
    "attach": "ATTACH '{other}' AS o",
    "read_text": "SELECT * FROM read_text('/etc/passwd')",
    "read_csv": "SELECT * FROM read_csv('{secret}')",
    "file_scan": "SELECT * FROM '{secret}'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "unwall": "SET enable_external_access = true",
    "unlock": "SET lock_configuration = false",
}


def _fill(sql: str, tmp_path: Path) -> str:
    return sql.format(out=tmp_path / "stolen.csv", other=tmp_path / "other.duckdb",
                      secret=tmp_path / "secret.csv")


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_saved_query_cannot_leave_the_case(built: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _saved(tmp_path / "q", "escape", _fill(ESCAPES[name], tmp_path), monkeypatch)
    with forensics.open(built, read_only=True) as case, pytest.raises(QueryError):
        case.query("escape")
    assert not (tmp_path / "stolen.csv").exists()


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_the_walled_connection_itself_refuses(built: Path, tmp_path: Path, name: str) -> None:
    """Not only the statement check: DuckDB's settings refuse each escape."""
    # any handle on the file: walled() opens its own connection with DuckDB's settings
    handle = SimpleNamespace(con=duckdb.connect(), read_only=True, path=built)
    with walled(handle) as con:
        with pytest.raises(duckdb.Error):
            con.execute(_fill(ESCAPES[name], tmp_path)).fetchall()
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(20,)]
    assert not (tmp_path / "stolen.csv").exists()


def test_saved_query_is_one_statement(built: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _saved(tmp_path / "q", "two", "SELECT 1 AS x;\nDELETE FROM labels", monkeypatch)
    with forensics.open(built) as case, \
            pytest.raises(QueryError, match="one statement; this text holds 2"):
        case.query("two")


def test_a_parameter_default_cannot_leave_the_case(built: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    header = HEADER + "-- param: x VARCHAR = (SELECT content FROM read_text('/etc/passwd'))\n"
    _saved(tmp_path / "q", "default", "SELECT getvariable('x') AS x", monkeypatch, header)
    with forensics.open(built, read_only=True) as case, \
            pytest.raises(QueryError, match="disabled"):
        case.query("default")


def test_saved_queries_still_read_the_case(built: Path) -> None:
    with forensics.open(built) as case:
        rows = case.query("evidence_inventory").rows()
    assert len(rows) == 1 and rows[0]["rows_loaded"] == 20


def test_cli_query_is_walled(built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "peek.sql").write_text(HEADER + "SELECT * FROM read_text('/etc/passwd')\n",
                                     encoding="utf-8")
    env = {**os.environ, "FORENSICS_QUERIES": str(folder),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", "from forensics.cli import main; main()",
                          "query", str(built), "peek", "--json"], capture_output=True,
                         text=True, env=env, timeout=300)
    doc = json.loads(out.stdout)
    assert out.returncode == 1 and doc["ok"] is False and "disabled" in doc["error"]
    assert "root:" not in out.stdout


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_read_only_case_sql_cannot_leave_the_case(built: Path, tmp_path: Path,
                                                  name: str) -> None:
    with forensics.open(built, read_only=True) as case, pytest.raises(QueryError):
        case.sql(_fill(ESCAPES[name], tmp_path))
        assert case.sql("SELECT count(*) AS n FROM events").rows() == [{"n": 20}]
    assert not (tmp_path / "stolen.csv").exists()


def test_attach_and_delete_another_case_is_refused(built: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    before = _counts(other)
    with forensics.open(built, read_only=True) as case, pytest.raises(QueryError):
        case.sql(f"ATTACH '{other}' AS o; DELETE FROM o.events")
    # writable: the evidence wall still holds
    with forensics.open(built) as case, pytest.raises(QueryError, match="append-only"):
        case.sql(f"ATTACH '{other}' AS o; DELETE FROM o.events")
    assert _counts(other) == before


def test_allow_files_reads_other_files_and_writes_none(built: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    with forensics.open(built, read_only=True) as case:
        rows = case.sql("SELECT * FROM read_csv($f)", f=str(secret), allow_files=True).rows()
        assert rows == [{"token": "sk_live_abc"}]
        for name in ("copy_to", "attach", "install", "load"):
            with pytest.raises(QueryError, match="not allowed here"):
                case.sql(_fill(ESCAPES[name], tmp_path), allow_files=True)
    assert not (tmp_path / "stolen.csv").exists()


WRITES = {
    "delete": "DELETE FROM evidence",
    "delete_qualified": "DELETE FROM main.events WHERE true",
    "update": "UPDATE events SET output_text = 'x'",
    "insert": "INSERT INTO feedback (event_id) VALUES ('e1')",
    "quoted": 'INSERT INTO "Rejects" SELECT * FROM rejects',
    "drop": "DROP TABLE retrievals",
    "truncate": "TRUNCATE moderations",
    "alter": "ALTER TABLE changes ADD COLUMN z INTEGER",
    "rename": "ALTER TABLE events RENAME TO old_events",
    "replace": "CREATE OR REPLACE TABLE evidence AS SELECT 1 AS x",
    "copy_from": "COPY events FROM '{secret}'",
    "drop_schema": "DROP SCHEMA main CASCADE",
    "import": "IMPORT DATABASE '{out}'",
    "prepare": "PREPARE p AS DELETE FROM events",
    "second": "SELECT 1; DELETE FROM rejects",
    "transaction": "BEGIN; DELETE FROM events; COMMIT",
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_evidence_is_append_only_for_case_sql(built: Path, tmp_path: Path,
                                              name: str) -> None:
    before = _counts(built)
    with forensics.open(built) as case, \
            pytest.raises(QueryError, match=r"not allowed|append-only"):
        case.sql(_fill(WRITES[name], tmp_path))
    assert _counts(built) == before


def test_case_sql_writes_its_own_tables(built: Path) -> None:
    with forensics.open(built) as case:
        case.sql("CREATE TABLE my_notes AS SELECT event_id FROM events LIMIT 3")
        case.sql("INSERT INTO labels VALUES ('e1', 'mine', 'analyst', 1, NULL, 'a1')")
        assert case.count("my_notes") == 3
        assert case.sql("SELECT count(*) AS n FROM labels WHERE label = 'mine'").rows() == \
            [{"n": 1}]
        # on a writable case analyst SQL may still read files (only evidence is walled)
        assert case.sql("SELECT 1 AS x FROM read_text('/etc/hostname') LIMIT 1").rows() == \
            [{"x": 1}]

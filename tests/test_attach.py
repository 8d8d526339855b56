"""Evidence read in place: a hive-partitioned Parquet folder, a Delta table and an Iceberg
table (SQLite catalog and metadata.json) made with their own libraries in temp folders,
attached without copying, investigated like loaded evidence, and their changes named."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import MappingError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "model_upgrade"


def _labels(case: Any) -> dict[str, int]:
    rows = case.sql("SELECT label, count(*) AS n FROM labels GROUP BY 1 ORDER BY 1").rows()
    return {r["label"]: r["n"] for r in rows}


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The drill loaded the ordinary way, and its events written as a Parquet dataset
    partitioned by feature (what a trace export to object storage looks like)."""
    root = tmp_path_factory.mktemp("lake")
    loaded = root / "loaded.duckdb"
    with forensics.open(loaded) as case:
        for name in ("events.jsonl.gz", "changes.jsonl", "feedback.jsonl.gz"):
            case.load(SAMPLE / name)
        case.detect()
        labels = _labels(case)
        case.con.execute("COPY (SELECT * EXCLUDE (evidence_id, locator) FROM events) TO "
                         f"'{root / 'parquet'}' (FORMAT parquet, PARTITION_BY (feature))")
        n_events = case.count("events")
    events = duckdb.sql(f"SELECT * FROM read_parquet('{root / 'parquet'}/**/*.parquet', "
                        "hive_partitioning = true) ORDER BY event_id").to_arrow_table()
    yield {"root": root, "loaded": loaded, "labels": labels, "n": n_events,
           "events": events}


def _case_with_side_tables(path: Path, loaded: Path) -> Any:
    """A case holding the drill's changes, feedback and the events' retrieved documents
    and moderations (loaded evidence), but not the events themselves."""
    case = forensics.open(path)
    for name in ("changes.jsonl", "feedback.jsonl.gz"):
        case.load(SAMPLE / name)
    case.con.execute(f"ATTACH '{loaded}' AS src (READ_ONLY)")
    for table in ("retrievals", "moderations"):
        case.con.execute(f"INSERT INTO {table} SELECT * FROM src.main.{table}")
    case.con.execute("DETACH src")
    return case


def test_parquet_folder_is_investigated_in_place(lake: dict[str, Any], tmp_path: Path) -> None:
    case = _case_with_side_tables(tmp_path / "c.duckdb", lake["loaded"])
    try:
        row = case.attach(lake["root"] / "parquet").rows()[0]
        assert row["kind"] == "parquet" and row["status"] == "attached"
        assert row["rows_loaded"] == lake["n"] and row["rows_rejected"] == 0
        files = sorted((lake["root"] / "parquet").rglob("*.parquet"))
        assert row["files"] == len(files)
        ev = case.sql("SELECT * FROM evidence WHERE format = 'attached parquet'").rows()[0]
        pinned = json.loads(case.sql("SELECT files FROM attachments").rows()[0]["files"])
        assert {f["path"] for f in pinned} == {str(f) for f in files}
        assert all(len(f["sha256"]) == 64 for f in pinned)
        assert ev["rows_loaded"] == lake["n"] and json.loads(ev["mapping"])["ts"] == "ts"
        # nothing was copied: the case's own events table stays empty
        own = case.con.execute("SELECT count(*) FROM c.main.events").fetchall()[0][0]
        assert own == 0
        assert case.count("events") == lake["n"]
        # the hive partition column is the canonical feature again
        by_feature = case.sql("SELECT feature, count(*) AS n FROM events GROUP BY 1").rows()
        assert sum(r["n"] for r in by_feature) == lake["n"] and len(by_feature) > 1
        case.detect()
        assert _labels(case) == lake["labels"]
        again = case.attach(lake["root"] / "parquet").rows()[0]
        assert again["status"] == "already attached"
        assert case.count("events") == lake["n"]
    finally:
        case.close()
    with forensics.open(tmp_path / "c.duckdb", read_only=True) as ro:   # views on reopen
        assert ro.count("events") == lake["n"]


def test_changed_parquet_files_are_named_and_findings_record_the_snapshot(
        lake: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    events: pa.Table = lake["events"]
    pq.write_table(events.slice(0, 1000), folder / "part-0.parquet")
    pq.write_table(events.slice(1000, 1000), folder / "part-1.parquet")
    with forensics.open(tmp_path / "c.duckdb") as case:
        first = case.attach(str(folder / "*.parquet")).rows()[0]
        assert first["rows_loaded"] == 2000
        f1 = case.record(case.sql("SELECT count(*) AS n FROM events"), "events")
        assert case.check_attached().rows()[0]["status"] == "unchanged"
        pq.write_table(events.slice(2000, 500), folder / "part-2.parquet")
        pq.write_table(events.slice(0, 999), folder / "part-0.parquet")   # rewritten
        check = case.check_attached().rows()[0]
        assert check["status"] == "changed"
        assert "1 file added (e.g. part-2.parquet)" in check["detail"]
        assert "1 file changed (e.g. part-0.parquet)" in check["detail"]
        second = case.attach(str(folder / "*.parquet")).rows()[0]
        assert second["status"] == f"attached; supersedes evidence {first['evidence_id']} " \
                                   f"(snapshot {first['snapshot']})"
        assert case.count("events") == 999 + 1000 + 500
        f2 = case.record(case.sql("SELECT count(*) AS n FROM events"), "events again")
        snaps = case.sql("SELECT finding_id, result->'snapshots' AS s FROM findings "
                         "ORDER BY 1").rows()
        assert [json.loads(r["s"])[0]["snapshot"] for r in snaps] == \
            [first["snapshot"], second["snapshot"]]
        assert [r["finding_id"] for r in snaps] == [f1, f2]
        # both evidence rows stay (append-only); the later one is read
        assert case.sql("SELECT count(*) AS n FROM evidence").rows()[0]["n"] == 2


def test_rows_without_a_timestamp_are_rejected_with_their_locator(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "c"], "time": ["2026-01-01T00:00:00Z", None,
                                                             "not a time"],
                             "completion": ["x", "y", "z"], "plan": ["pro", "free", "pro"]}),
                   folder / "one.parquet")
    with forensics.open(tmp_path / "c.duckdb") as case:
        row = case.attach(folder).rows()[0]
        assert (row["rows_loaded"], row["rows_rejected"]) == (1, 2)
        rejects = case.sql("SELECT locator, reason FROM rejects ORDER BY locator").rows()
        assert [r["locator"].rsplit(" ", 2)[1:] for r in rejects] == [["row", "2"],
                                                                        ["row", "3"]]
        assert rejects[0]["reason"] == "missing or unparseable timestamp"
        event = case.sql("SELECT event_id, output_text, attributes->>'plan' AS plan "
                         "FROM events").rows()[0]
        assert event == {"event_id": "a", "output_text": "x", "plan": "pro"}


def test_mapping_names_source_columns(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    pq.write_table(pa.table({"rid": ["r1"], "at": [1767225600], "meta": [{"who": "u1"}],
                             "answer": ["hi"]}), folder / "x.parquet")
    with forensics.open(tmp_path / "c.duckdb") as case:
        case.attach(folder, mapping={"event_id": "rid", "ts": "at", "user_id": "meta.who"})
        assert case.sql("SELECT event_id, user_id, ts::VARCHAR AS ts, output_text "
                        "FROM events").rows() == [{"event_id": "r1", "user_id": "u1",
                                                   "ts": "2026-01-01 00:00:00",
                                                   "output_text": "hi"}]
    with forensics.open(tmp_path / "d.duckdb") as case, \
            pytest.raises(MappingError, match="no such column"):
        case.attach(folder, mapping={"ts": "nope"})


def test_load_after_attach_appends_to_the_case(lake: dict[str, Any], tmp_path: Path) -> None:
    with forensics.open(tmp_path / "c.duckdb") as case:
        case.attach(lake["root"] / "parquet")
        case.load(SAMPLE / "changes.jsonl")
        case.load(SAMPLE / "events.jsonl.gz")      # the same events, loaded: two copies
        assert case.count("events") == 2 * lake["n"]
        assert case.count("changes") > 0


def test_delta_table_version_is_pinned_and_a_new_version_is_named(
        lake: dict[str, Any], tmp_path: Path) -> None:
    from deltalake import write_deltalake

    table = tmp_path / "delta"
    events: pa.Table = lake["events"]
    write_deltalake(str(table), events.slice(0, 3000), partition_by=["feature"])
    with forensics.open(tmp_path / "c.duckdb") as case:
        row = case.attach(table).rows()[0]
        assert (row["kind"], row["snapshot"], row["rows_loaded"]) == ("delta", "0", 3000)
        write_deltalake(str(table), events.slice(3000, 200), mode="append",
                        partition_by=["feature"])
        check = case.check_attached().rows()[0]
        assert (check["status"], check["pinned"], check["current"]) == ("changed", "0", "1")
        assert "moved from version 0 to 1" in check["detail"]
        assert case.count("events") == 3000       # still the pinned version
        row = case.attach(table).rows()[0]
        assert row["snapshot"] == "1" and case.count("events") == 3200
        assert set(case.sql("SELECT DISTINCT feature FROM events").df["feature"]) == \
            set(events.slice(0, 3200).column("feature").to_pylist())


def test_iceberg_table_from_a_sqlite_catalog_and_a_metadata_file(
        lake: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    uri = f"sqlite:///{warehouse / 'catalog.db'}"
    catalog = SqlCatalog("lab", uri=uri, warehouse=warehouse.as_uri())
    catalog.create_namespace("traces")
    events: pa.Table = lake["events"]
    table = catalog.create_table("traces.events", schema=events.schema)
    table.append(events.slice(0, 2500))
    monkeypatch.setenv("PYICEBERG_CATALOG__LAB__URI", uri)
    monkeypatch.setenv("PYICEBERG_CATALOG__LAB__WAREHOUSE", warehouse.as_uri())
    with forensics.open(tmp_path / "c.duckdb") as case:
        row = case.attach("iceberg:lab/traces.events").rows()[0]
        snapshot = str(table.current_snapshot().snapshot_id)
        assert (row["kind"], row["snapshot"], row["rows_loaded"]) == ("iceberg", snapshot, 2500)
        table.append(events.slice(2500, 100))
        check = case.check_attached().rows()[0]
        newer = str(catalog.load_table("traces.events").current_snapshot().snapshot_id)
        assert check["detail"] == (f"the table moved from snapshot {snapshot} to {newer}; "
                                   f"the case still reads {snapshot}")
        assert case.count("events") == 2500
        # the same table by its metadata file: the newer snapshot supersedes the first
        row = case.attach(catalog.load_table("traces.events").metadata_location).rows()[0]
        assert row["snapshot"] == newer and row["status"].startswith("attached; supersedes")
        assert case.count("events") == 2600
        f = case.record(case.sql("SELECT count(*) AS n FROM events"), "n")
        stored = case.sql("SELECT result->'snapshots' AS s FROM findings WHERE finding_id = $f",
                          f=f).rows()[0]["s"]
        assert [s["snapshot"] for s in json.loads(stored)] == [newer]
        # credentials never enter the case: the source is recorded as given
        assert "PYICEBERG" not in json.dumps(case.sql("SELECT * FROM attachments").rows(),
                                             default=str)


def test_cli_attach_and_check(lake: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    path = str(tmp_path / "c.duckdb")
    out = runner.invoke(cli, ["attach", path, str(lake["root"] / "parquet"), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["ok"] and doc["rows"][0]["rows_loaded"] == lake["n"]
    out = runner.invoke(cli, ["attach", path, "--check", "--json"])
    assert json.loads(out.output)["rows"][0]["status"] == "unchanged"
    out = runner.invoke(cli, ["attach", path, str(tmp_path / "nothing"), "--json"])
    err = json.loads(out.output)
    assert out.exit_code != 0 and not err["ok"] and "no Parquet files" in err["error"]
    assert os.path.exists(path)

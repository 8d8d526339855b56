"""A drill written as OTLP, OpenInference (Phoenix span JSON) or Langfuse exports loads
back, detected without --format, into the same events as the canonical JSON Lines drill."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.drills import writers
from forensics.drills.generator import EVENT_ORDER, generate
from forensics.ingest.vendors import otlp

COHORTS = ["plan", "locale", "region", "tenant", "client_version", "request_language",
           "expected_format", "policy_decision"]
CANONICAL = [c for c in EVENT_ORDER if c not in (*COHORTS, "retrievals", "moderations")]


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for fmt in ("jsonl", "otlp", "openinference", "langfuse"):
        folder = tmp_path_factory.mktemp(fmt)
        generate(folder, "agent_tool", seed=4, events=1500, days=3, format=fmt)
        out[fmt] = folder / ("events.jsonl" if fmt == "jsonl" else f"events.{fmt}.jsonl")
    return out


def snapshot(path: Path, folder: Path) -> dict[str, pl.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    case = forensics.open(folder / "case.duckdb")
    try:
        row = case.load(path).rows()[0]
        assert row["rows_rejected"] == 0 and row["records_in"] == row["rows_loaded"]
        cols = ", ".join([*CANONICAL, *[f"attributes->>'{k}' AS {k}" for k in COHORTS]])
        return {"format": pl.DataFrame({"format": [row["format"]]}),
                "events": case.sql(f"SELECT {cols} FROM events ORDER BY event_id").df,
                "retrievals": case.sql("SELECT * EXCLUDE (evidence_id) FROM retrievals "
                                       "ORDER BY ALL").df,
                "moderations": case.sql("SELECT * EXCLUDE (evidence_id) FROM moderations "
                                        "ORDER BY ALL").df}
    finally:
        case.close()


@pytest.mark.parametrize("fmt", ["otlp", "openinference", "langfuse"])
def test_drill_in_each_shape_loads_back_the_same_events(drills: dict[str, Path], fmt: str,
                                                        tmp_path: Path) -> None:
    want = snapshot(drills["jsonl"], tmp_path / "a")
    got = snapshot(drills[fmt], tmp_path / "b")
    assert got["format"]["format"][0] == fmt
    assert want["events"].height > 1500          # llm calls and their tool spans
    for col in want["events"].columns:
        assert want["events"][col].equals(got["events"][col], check_names=False), col
    assert want["retrievals"].equals(got["retrievals"])
    assert want["moderations"].equals(got["moderations"])


def test_drill_cli_writes_the_format(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["drill", str(tmp_path / "d"), "--scenario", "agent_tool",
                                   "--events", "1000", "--days", "3", "--format", "otlp",
                                   "--json"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "d" / "events.otlp.jsonl").read_text().startswith('{"resourceSpans"')
    bad = CliRunner().invoke(cli, ["drill", str(tmp_path / "e"), "--scenario", "agent_tool",
                                   "--format", "csv"])
    assert bad.exit_code == 2


@pytest.mark.slow
def test_otlp_drill_in_many_chunks_and_flushes_loads_the_same(
        drills: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # short lines, each its own chunk, parsed in parallel waves and flattened a few spans
    # at a time: the same events as the JSON Lines drill
    monkeypatch.setattr(writers, "SPANS_PER_LINE", 150)
    generate(tmp_path / "d", "agent_tool", seed=4, events=1500, days=3, format="otlp")
    path = tmp_path / "d" / "events.otlp.jsonl"
    assert sum(1 for _ in path.open(encoding="utf-8")) > 8
    monkeypatch.setattr(otlp, "BATCH_BYTES", 1)
    monkeypatch.setattr(otlp, "FLUSH_SPANS", 300)
    monkeypatch.setattr(otlp, "THREAD_MEMORY", 1)     # as many threads as DuckDB has
    want = snapshot(drills["jsonl"], tmp_path / "a")
    got = snapshot(path, tmp_path / "b")
    for col in want["events"].columns:
        assert want["events"][col].equals(got["events"][col], check_names=False), col
    assert want["retrievals"].equals(got["retrievals"])
    assert want["moderations"].equals(got["moderations"])

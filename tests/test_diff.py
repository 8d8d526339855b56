"""compare(), suspects() and retrieval_diff() on real case files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from forensics.cli.main import cli
from forensics.core.errors import UsageError
from tests import incident


@pytest.fixture
def loaded(case: Any, tmp_path: Path) -> Any:
    return incident.load(case, tmp_path)


def test_suspects_blame_the_harmful_change_not_the_simultaneous_decoy(loaded: Any) -> None:
    r = loaded.suspects()
    top = r.rows()[0]
    assert top["change_id"] == "CHG-1" and top["verdict"] == "likely cause"
    assert top["effect"] > 0.05 and top["ci_low"] > 0 and top["q_value"] < 0.05
    assert top["segment"] == "tenant=northwind"
    decoy = r.df.filter(pl.col("to_version") == "m2").row(0, named=True)
    assert decoy["rank"] > 1 and decoy["verdict"] == "no contrast"
    assert decoy["score"] < top["score"] / 2
    assert decoy["ci_low"] < 0 < decoy["ci_high"]
    assert abs(top["alignment_hours"]) <= 8
    assert r.meta["onset"] is not None and "event_facts" in r.sql
    assert all(isinstance(e, str) and e.endswith(".") for e in r.df["explanation"].to_list())
    json.dumps(r.to_dict())
    assert "CHG-1" in r.to_markdown() and "<table>" in r._repr_html_()


def test_suspects_without_change_log_uses_inferred_changes(case: Any, tmp_path: Path) -> None:
    incident.load(case, tmp_path, declared=False)
    r = case.suspects()
    assert r.meta["change_log"] == "inferred only"
    top = r.rows()[0]
    assert top["source"] == "inferred" and top["to_version"] == "v2"


def test_suspects_say_when_changes_cannot_be_told_apart(case: Any, tmp_path: Path) -> None:
    incident.load(case, tmp_path, confounded=True)
    r = case.suspects()
    pair = r.df.filter(pl.col("feature") == "support_chat")
    assert pair.height == 2
    assert pair["verdict"].to_list() == ["confounded", "confounded"]
    assert "cannot tell" in pair["explanation"][0]


def test_suspects_for_a_sql_pattern_and_cli_json(loaded: Any) -> None:
    r = loaded.suspects("status = 'error' AND tenant = 'northwind'")
    assert r.rows()[0]["change_id"] == "CHG-1"
    path = str(loaded.path)
    loaded.close()
    out = CliRunner().invoke(cli, ["suspects", path, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["ok"] and doc["onset"]
    first = doc["suspects"][0]
    assert first["change_id"] == "CHG-1"
    assert {"kind", "feature", "from_version", "to_version", "ts", "score", "effect",
            "ci_low", "ci_high", "explanation"} <= set(first)


def test_compare_versions_on_concurrent_traffic(loaded: Any) -> None:
    r = loaded.compare(by="prompt_version", a="v1", b="v2", where="feature = 'support_chat'")
    assert r.meta["concurrent"] and 4 <= r.meta["hours_compared"] <= 8
    bad = r.df.filter((pl.col("segment") == "all") & (pl.col("metric") == "error_rate"))
    row = bad.row(0, named=True)
    assert row["b_value"] > row["a_value"] and row["ci_low"] > 0
    assert row["a_count"] <= row["a_n"] and row["q_value"] >= row["p_value"]
    lat = r.df.filter(pl.col("metric") == "latency_p50").row(0, named=True)
    assert lat["kind"] == "value" and lat["ci_low"] < lat["diff"] < lat["ci_high"]
    assert lat["diff"] > 0                       # v2 is 30 % slower
    assert r.meta["moved_most"]["tenant"]["value"] == "northwind"
    assert r.df["q_value"].is_not_null().sum() == r.meta["tests"]
    assert r.df.filter(pl.col("segment") != "all")["small_sample"].dtype == pl.Boolean
    r.plot()


def test_compare_before_after_and_dict_cohorts(loaded: Any) -> None:
    at = incident.DECOY_AT.isoformat()
    r = loaded.compare(at=at, window="24h", by="prompt_version", a="v1",
                       where="feature = 'support_chat'", segments=[])
    row = r.df.filter(pl.col("metric") == "error_rate").row(0, named=True)
    assert not r.meta["concurrent"]
    assert row["ci_low"] < 0 < row["ci_high"]    # the model switch changed nothing
    d = loaded.compare({"tenant": "northwind'; --"}, {"tenant": "contoso"},
                       metrics=["error_rate"], segments=["plan"])
    assert d.meta["events_a"] == 0 or d.df.height >= 1
    t = loaded.compare({"tenant": "northwind"}, {"tenant": "contoso"},
                       metrics=["error_rate"], segments=[])
    assert t.meta["concurrent"]          # {column: value} cohorts: same hours, as by=
    assert "northwind'; --" in d.params.values()
    with pytest.raises(UsageError):
        loaded.compare(by="prompt_version", a="v1")


def test_retrieval_diff_overlap_and_new_documents(loaded: Any) -> None:
    r = loaded.retrieval_diff(at=incident.OTHER_AT.isoformat(), feature="doc_qa", k=3)
    assert r.meta["matched_queries"] > 0
    assert r.meta["docs_entered"] == 7
    q = r.queries
    assert ((q["overlap_at_k"] >= 0) & (q["overlap_at_k"] <= 1)).all()
    assert ((q["rbo"] >= 0) & (q["rbo"] <= 1)).all()
    assert q["rbo"].min() < 0.5                 # new index: different documents
    same = loaded.retrieval_diff(before="d1", after="d1", feature="doc_qa")
    assert same.meta["docs_entered"] == 0
    entered = r.df.filter(pl.col("status") == "entered")
    assert (entered["low"] <= entered["bad_rate_after"]).all()


def test_drill_planted_change_is_the_top_suspect(tmp_path: Path) -> None:
    import forensics
    from forensics.drills.generator import generate

    generate(tmp_path / "drill", "prompt_regression", seed=2, events=30_000)
    key = json.loads((tmp_path / "drill" / "answer_key.json").read_text())
    case = forensics.open(tmp_path / "case.duckdb")
    try:
        for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
            case.load(tmp_path / "drill" / name)
        if hasattr(case, "detect"):
            case.detect()
        # the investigator's pattern: refusal-like answers or any bad signal
        r = case.suspects("is_bad OR output_text ILIKE '%cannot%' "
                          "OR output_text ILIKE '%can''t%'")
        ranked = [(row["feature"], row["to_version"]) for row in r.rows()]
        root, decoy = key["root_cause"], key["decoy"]
        assert ranked[0] == (root["feature"], root["to_version"])
        assert ranked.index((decoy["feature"], decoy["to_version"])) > 0
        assert r.rows()[0]["effect"] > 0
        assert r.rows()[1]["verdict"] == "no contrast"
    finally:
        case.close()



def test_retrieval_diff_defaults_to_the_newest_index_change(case: Any, tmp_path: Path) -> None:
    from tests.conftest import event, write_jsonl

    rows = []
    for i in range(60):
        version = ("kb1", "kb2", "kb3")[i // 20]
        bad = version == "kb3" and i % 2 == 0
        rows.append(event(i, ts=f"2026-03-0{1 + i // 20}T10:{i % 60:02d}:00Z",
                          input_text=f"q{i % 5}", retrieval_version=version,
                          status="error" if bad else "ok",
                          retrievals=[{"doc_id": f"{version}-{'leak' if bad else i % 3}",
                                       "rank": 1}]))
    case.load(write_jsonl(tmp_path / "r.jsonl", rows))
    result = case.retrieval_diff()
    assert (result.meta["before"], result.meta["after"]) == ("kb2", "kb3")
    assert result.rows()[0]["doc_id"] == "kb3-leak"
    assert result.rows()[0]["status"] == "entered"
    lows = [v for v in result.df["low"].to_list() if v is not None]
    assert lows == sorted(lows, reverse=True)
    with pytest.raises(UsageError, match="fewer than two"):
        case.retrieval_diff(feature="nope")


def test_no_change_near_the_onset_means_every_change_is_considered(loaded: Any) -> None:
    narrow = loaded.suspects(lookback="1h", lookahead="0h", window="48h")
    assert narrow.df.height >= 2
    assert "every change was considered" in narrow.meta["warning"]
    assert narrow.rows()[0]["change_id"] == "CHG-1"

"""The drill generator: realistic, deterministic, streamed, with a truthful answer key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from forensics.core.errors import UsageError
from forensics.drills.generator import SCENARIOS, generate


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in SCENARIOS:
        folder = tmp_path_factory.mktemp(name)
        generate(folder, name, seed=5, events=12_000, days=14)
        out[name] = folder
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", "agent_tool", seed=1, events=3000, days=4)
    generate(tmp_path / "b", "agent_tool", seed=1, events=3000, days=4)
    generate(tmp_path / "c", "agent_tool", seed=2, events=3000, days=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["events.jsonl"] != _digest(tmp_path / "c")["events.jsonl"]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_drill_loads_cleanly_and_key_matches_the_traffic(case: Any, drills: dict[str, Path],
                                                         name: str) -> None:
    folder = drills[name]
    for f in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
        row = case.load(folder / f).rows()[0]
        assert row["rows_rejected"] == 0, (f, row)
    key = json.loads((folder / "answer_key.json").read_text())
    rc = key["root_cause"]
    assert case.sql("SELECT count(*) AS n FROM changes WHERE change_id = $c",
                    c=rc["change_id"]).rows()[0]["n"] == 1
    events = (folder / "affected_events.txt").read_text().split()
    assert len(events) == key["affected"]["events"] > 0
    column = {"prompt": "prompt_version", "retrieval": "retrieval_version", "model": "model",
              "release": "release"}[rc["kind"]]
    got = case.sql(f"""SELECT count(*) AS n, count(DISTINCT user_id) AS users,
                              min(ts) AS first, max(ts) AS last FROM events
                       WHERE event_id IN (SELECT unnest($ids)) AND feature = $f
                         AND {column} = $v""", ids=events, f=rc["feature"],
                   v=rc["to_version"]).rows()[0]
    assert got["n"] == len(events)
    assert got["users"] == key["affected"]["users"]
    window = key["exposure_window"]
    assert window["start"] <= got["first"] + "Z"
    assert got["last"] < window["end"]


def test_traffic_is_realistic(case: Any, drills: dict[str, Path]) -> None:
    case.load(drills["retrieval_leak"] / "events.jsonl")
    shape = case.sql("""
        SELECT count(DISTINCT feature) AS features, count(DISTINCT user_id) AS users,
               count(DISTINCT session_id) AS sessions, count(DISTINCT locale) AS locales,
               count(DISTINCT plan) AS plans, count(DISTINCT client_version) AS clients,
               date_diff('day', min(ts), max(ts)) AS days,
               avg(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS error_rate
        FROM event_facts""").rows()[0]
    assert shape["features"] == 4 and shape["locales"] >= 5 and shape["plans"] == 3
    assert shape["days"] >= 13 and shape["users"] > 100 and shape["sessions"] > shape["users"]
    assert 0.001 < shape["error_rate"] < 0.05
    by_hour = case.sql("SELECT hour(ts) AS h, count(*) AS n FROM events GROUP BY 1").rows()
    counts = {r["h"]: r["n"] for r in by_hour}
    assert counts[14] > 2 * counts[3]                       # daily rhythm
    dow = case.sql("SELECT isodow(ts) >= 6 AS weekend, count(*) / count(DISTINCT ts::DATE) "
                   "AS per_day FROM events GROUP BY 1 ORDER BY 1").rows()
    assert dow[1]["per_day"] < 0.8 * dow[0]["per_day"]      # weekly rhythm
    assert case.count("retrievals") > 0 and case.count("moderations") > 0


def test_leak_scenario_plants_private_data_for_one_tenant(case: Any,
                                                          drills: dict[str, Path]) -> None:
    case.load(drills["retrieval_leak"] / "events.jsonl")
    ids = (drills["retrieval_leak"] / "affected_events.txt").read_text().split()
    rows = case.sql("SELECT DISTINCT tenant, output_text FROM event_facts "
                    "WHERE event_id IN (SELECT unnest($ids))", ids=ids).rows()
    assert {r["tenant"] for r in rows} == {"northwind"}
    assert all("@" in r["output_text"] for r in rows)


def test_agent_scenario_keeps_parent_child_spans(case: Any, drills: dict[str, Path]) -> None:
    case.load(drills["agent_tool"] / "events.jsonl")
    orphans = case.sql("""SELECT count(*) AS n FROM events t WHERE kind = 'tool' AND NOT EXISTS
                          (SELECT 1 FROM events p WHERE p.span_id = t.parent_id
                           AND p.trace_id = t.trace_id)""").rows()[0]["n"]
    assert orphans == 0
    assert case.sql("SELECT count(*) AS n FROM events WHERE kind = 'tool'").rows()[0]["n"] > 0


def test_feedback_lags_and_under_reports(case: Any, drills: dict[str, Path]) -> None:
    folder = drills["prompt_regression"]
    case.load(folder / "events.jsonl")
    case.load(folder / "feedback.jsonl")
    lag = case.sql("""SELECT min(date_diff('second', e.ts, f.ts)) AS min_lag,
                             count(*) AS n FROM feedback f JOIN events e USING (event_id)""")
    assert lag.rows()[0]["min_lag"] >= 0
    ids = (folder / "affected_events.txt").read_text().split()
    reported = case.sql("SELECT count(DISTINCT event_id) AS n FROM feedback WHERE negative "
                        "AND event_id IN (SELECT unnest($ids))", ids=ids).rows()[0]["n"]
    assert reported < 0.5 * len(ids)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown scenario"):
        generate(tmp_path, "nope")
    with pytest.raises(UsageError, match="at least 3 days"):
        generate(tmp_path, "agent_tool", days=1)

"""The post-mortem on drills: numbers match the answer key, nothing personal leaks, two runs
give the same bytes, and the eval pack and drafts are there.

Detectors are another stage, so the drill events are labelled here with SQL: the answer
key's affected events (the pattern served by the root-cause version in its window) plus
pattern events before the incident (background the report must leave out), and an
unrelated label in another feature that never rises (the report must not pick it)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.redact import PATTERNS
from forensics.drills.generator import generate

SCENARIOS = ["prompt_regression", "retrieval_leak", "model_upgrade", "agent_tool"]
TEXT = (".md", ".html", ".jsonl", ".yaml", ".csv", ".json")


def _drill_case(root: Path, scenario: str) -> tuple[Path, dict[str, Any]]:
    drill = root / scenario
    generate(drill, scenario, seed=3, events=30_000, days=7)
    key = json.loads((drill / "answer_key.json").read_text(encoding="utf-8"))
    path = root / f"{scenario}.duckdb"
    case = forensics.open(path)
    for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
        case.load(drill / name)
    label = key["pattern"]["labels"][-1]
    onset = key["onset"].replace("T", " ").rstrip("Z")
    other = "report_json" if key["pattern"]["feature"] != "report_json" else "doc_qa"
    case.con.execute(
        "INSERT INTO labels SELECT column0, ?, 'rule', 1, NULL, 'test' FROM "
        "read_csv(?, header = false, columns = {'column0': 'VARCHAR'})",
        [label, str(drill / "affected_events.txt")])
    case.con.execute(
        "INSERT INTO labels SELECT event_id, ?, 'rule', 1, NULL, 'test' FROM events "
        "WHERE feature = ? AND kind = ? AND ts < CAST(? AS TIMESTAMP) AND hash(event_id) % 40 = 0",
        [label, key["pattern"]["feature"], key["pattern"]["event_kind"], onset])
    case.con.execute(
        "INSERT INTO labels SELECT event_id, 'noise', 'rule', 1, NULL, 'test' FROM events "
        "WHERE feature = ? AND hash(event_id) % 50 = 0", [other])
    case.close()
    return path, key


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("drills")
    return {s: _drill_case(root, s) for s in SCENARIOS}


def _report(case: Path, out: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["report", str(case), "-o", str(out), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_report_matches_the_answer_key(drills: Any, scenario: str, tmp_path: Path) -> None:
    case, key = drills[scenario]
    data = _report(case, tmp_path / "pm")
    truth = key["affected"]
    assert (data["users"], data["sessions"], data["events"]) == \
        (truth["users"], truth["sessions"], truth["events"])
    assert data["root_cause"] == key["root_cause"]["change_id"]
    assert data["window"][0].replace(" ", "T") + "Z" == key["exposure_window"]["start"]
    text = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    for heading in ("## Summary", "## Timeline", "## Impact", "## Root cause",
                    "## Why it was not caught earlier", "## What's changing",
                    "## Communication", "## Evidence appendix"):
        assert heading in text
    assert f"{truth['users']:,} users" in text
    assert "noise" not in text.split("## Evidence appendix")[0]


def _leaks(out: Path, ids: set[str]) -> list[tuple[str, str]]:
    found = []
    for path in sorted(out.rglob("*")):
        if path.suffix not in TEXT:
            continue
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "",
                      path.read_text(encoding="utf-8"))
        tokens = set(re.findall(r"[A-Za-z0-9_\-]+", text))
        found += [(path.name, f"id {t}") for t in sorted(tokens & ids)[:3]]
        found += [(path.name, f"{name} {m}") for name, pattern in PATTERNS
                  for m in pattern.findall(text)[:3]]
    return found


def test_nothing_personal_leaks_unless_asked(drills: Any, tmp_path: Path) -> None:
    case_path, _ = drills["retrieval_leak"]
    case = forensics.open(case_path, read_only=True)
    ids = set(case.sql("SELECT DISTINCT user_id AS v FROM events UNION "
                       "SELECT DISTINCT session_id FROM events", row_cap=None).df["v"])
    case.close()
    _report(case_path, tmp_path / "red")
    assert _leaks(tmp_path / "red", ids) == []
    _report(case_path, tmp_path / "raw", "--no-redact")
    raw = _leaks(tmp_path / "raw", ids)
    assert any(kind.startswith("EMAIL") for _, kind in raw)
    assert any(kind.startswith("id ") for _, kind in raw)


def test_two_runs_give_the_same_bytes(drills: Any, tmp_path: Path) -> None:
    case_path, _ = drills["agent_tool"]
    first = _report(case_path, tmp_path / "one")
    second = _report(case_path, tmp_path / "two")
    assert first["files"] == second["files"]
    assert first["findings"] == second["findings"]
    for row in first["files"]:
        a = (tmp_path / "one" / row["path"]).read_bytes()
        assert a == (tmp_path / "two" / row["path"]).read_bytes(), row["path"]
    html = (tmp_path / "one" / "postmortem.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "src='charts/" not in html


def test_every_cited_finding_reruns(drills: Any, tmp_path: Path) -> None:
    case_path, _ = drills["prompt_regression"]
    data = _report(case_path, tmp_path / "pm")
    text = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"\[(F\d{3})\]", text))
    assert cited and cited <= set(data["findings"])
    case = forensics.open(case_path, read_only=True)
    try:
        for fid in sorted(cited):
            assert case.check_finding(fid)["reproduced"], fid
            assert f"### {fid}:" in text
    finally:
        case.close()


def test_eval_pack_formats(drills: Any, tmp_path: Path) -> None:
    case_path, key = drills["retrieval_leak"]
    case = forensics.open(case_path)
    try:
        pack = case.export_evals(tmp_path / "ev", format="all", per_cluster=4)
    finally:
        case.close()
    ev = tmp_path / "ev"
    cases = [json.loads(line) for line in (ev / "cases.jsonl").read_text("utf-8").splitlines()]
    assert 0 < len(cases) <= 4 * len(pack.meta["forms"])
    first = cases[0]
    assert first["input"] and first["expected"] and first["source"]["event_id"]
    assert first["context"]["retrieved"] and first["context"]["system_prompt"]
    assert first["source"]["change_id"] == key["root_cause"]["change_id"]
    assert first["context"]["retrieval_version"] == key["root_cause"]["to_version"]
    inputs = [re.sub(r"\d+", "#", c["input"].lower()) for c in cases]
    assert len(inputs) == len(set(inputs))                      # deduplicated
    tests = yaml.safe_load((ev / "promptfoo_tests.yaml").read_text("utf-8"))
    assert {"vars", "assert", "description"} <= set(tests[0])
    assert any(a["type"] == "not-regex" for a in tests[0]["assert"])
    config = yaml.safe_load((ev / "promptfooconfig.yaml").read_text("utf-8"))
    assert config["tests"] == "file://promptfoo_tests.yaml"
    sample = json.loads((ev / "inspect_dataset.jsonl").read_text("utf-8").splitlines()[0])
    assert {"id", "input", "target", "metadata"} <= set(sample)
    assert sample["input"][-1]["role"] == "user"
    rows = list(csv.DictReader((ev / "inspect_dataset.csv").open(encoding="utf-8")))
    assert len(rows) == len(cases) and rows[0]["target"] == first["expected"]
    out = CliRunner().invoke(cli, ["evals", str(case_path), "-o", str(tmp_path / "cli"),
                                   "--format", "jsonl", "--per-cluster", "4", "--json"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "cli" / "cases.jsonl").read_bytes() == (ev / "cases.jsonl").read_bytes()


def test_report_without_labels_or_changes(tmp_path: Path) -> None:
    """A case with nothing but events: the report still writes, saying what it lacks."""
    from .conftest import event, write_jsonl

    recs = [event(i, status="error" if i % 4 == 0 else "ok") for i in range(40)]
    case = forensics.open(tmp_path / "c.duckdb")
    case.load(write_jsonl(tmp_path / "a.jsonl", recs))
    result = case.postmortem(tmp_path / "pm", min_cell=0)
    case.close()
    assert result.meta["events"] == 10 and result.meta["root_cause"] is None
    text = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    assert "root cause is not established" in text


def test_empty_case_is_refused_with_a_hint(tmp_path: Path) -> None:
    forensics.open(tmp_path / "c.duckdb").close()
    out = CliRunner().invoke(cli, ["report", str(tmp_path / "c.duckdb"), "-o",
                                   str(tmp_path / "pm"), "--json"])
    doc = json.loads(out.output)
    assert out.exit_code != 0 and not doc["ok"]
    assert "no events" in doc["error"] and "load" in doc["hint"]
    assert not (tmp_path / "pm").exists()


def test_read_only_case_is_refused(drills: Any, tmp_path: Path) -> None:
    case = forensics.open(drills["agent_tool"][0], read_only=True)
    try:
        with pytest.raises(forensics.core.errors.ReadOnlyCaseError):
            case.postmortem(tmp_path / "pm")
    finally:
        case.close()


def test_sampled_review_interval_covers_the_answer_key(tmp_path: Path) -> None:
    """Detector flags with false positives; reviewers judged a stratified sample (verdict:
    in the answer key or not); the report's estimate covers the answer key."""
    drill = tmp_path / "drill"
    generate(drill, "prompt_regression", seed=5, events=30_000, days=7)
    key = json.loads((drill / "answer_key.json").read_text(encoding="utf-8"))
    case = forensics.open(tmp_path / "c.duckdb")
    for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
        case.load(drill / name)
    case.con.execute("CREATE TEMP TABLE truth AS SELECT column0 AS event_id FROM read_csv(?, "
                     "header = false, columns = {'column0': 'VARCHAR'})",
                     [str(drill / "affected_events.txt")])
    case.con.execute("INSERT INTO labels SELECT event_id, 'flagged', 'rule', 1, NULL, 'det' "
                     "FROM event_facts WHERE feature = 'support_chat' AND (event_id IN "
                     "(SELECT event_id FROM truth) OR is_bad OR hash(event_id) % 30 = 0)")
    pick = case.review_sample("flagged", 150, strata="none", seed=2)
    case.con.execute("INSERT INTO labels SELECT p.event_id, CASE WHEN t.event_id IS NULL THEN "
                     "'not_affected' ELSE 'confirmed' END, 'reviewer', 1, NULL, 'review' FROM "
                     "(SELECT unnest($ids) AS event_id) p LEFT JOIN truth t USING (event_id)",
                     {"ids": pick.df["event_id"].to_list()})
    result = case.postmortem(tmp_path / "pm", pattern="flagged", evals=False)
    est = case.estimate_impact("flagged")
    case.close()
    m, truth = est.meta, key["affected"]
    assert m["events_low"] <= truth["events"] <= m["events_high"]
    assert m["users_low"] <= truth["users"] <= m["users_high"]
    text = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    assert "Estimated from the sampled review" in text
    assert f"({_fmt(m['users_low'])} to {_fmt(m['users_high'])})" in text
    assert result.meta["root_cause"] == key["root_cause"]["change_id"]


def _fmt(value: float) -> str:
    return f"{round(value):,}"      # an estimated count reads as a whole number


@pytest.mark.slow
def test_report_keeps_an_edited_draft(drills: Any, tmp_path: Path) -> None:
    case_path, _ = drills["prompt_regression"]
    out = tmp_path / "pm"
    _report(case_path, out, "--no-evals")
    notice = out / "notifications" / "affected_users.md"
    status = out / "notifications" / "status_page.md"
    written = notice.read_text(encoding="utf-8")
    edited = written.replace("We are sorry.", "We are sorry. -- edited by the comms lead")
    notice.write_text(edited, encoding="utf-8")
    again = _report(case_path, out, "--no-evals")          # run again: the edit survives
    assert notice.read_text(encoding="utf-8") == edited
    beside = out / "notifications" / "affected_users.new.md"
    assert beside.read_text(encoding="utf-8") == written
    assert again["drafts_kept"] == [{"kept": str(notice), "new": str(beside)}]
    assert not (out / "notifications" / "status_page.new.md").exists()   # unedited: rewritten
    assert status.exists()
    text = CliRunner().invoke(cli, ["report", str(case_path), "-o", str(out), "--no-evals"])
    said = text.output.replace("\n", "")                    # the terminal wraps long paths
    assert text.exit_code == 0 and "Kept" in said and "affected_users.new.md" in said
    assert "--force" in said
    _report(case_path, out, "--no-evals", "--force")       # --force overwrites
    assert notice.read_text(encoding="utf-8") == written


@pytest.mark.parametrize("scenario", ["prompt_regression", "retrieval_leak"])
def test_canned_statements_agree_with_their_figures(drills: Any, scenario: str,
                                                    tmp_path: Path) -> None:
    """Each canned sentence is checked against the number it rests on, and numbers read
    as a person would say them: whole counts, no -0.00, no "0.0 h"."""
    case_path, _ = drills[scenario]
    data = _report(case_path, tmp_path / "pm", "--no-evals")
    text = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    seen = re.search(r"moderation flagged ([\d,]+) of ([\d,]+) affected events", text)
    action = re.search(r"they flagged ([\d,]+) of ([\d,]+) affected events \(([\d.<]+)%\)", text)
    if seen:
        flagged, affected = (int(g.replace(",", "")) for g in seen.groups())
        assert (action is not None) == (flagged < 0.5 * affected)
        if action:
            assert action.groups()[:2] == seen.groups()
            assert action[3] == f"{100 * flagged / affected:.1f}" or action[3].startswith("<")
    for s in data["suspects"]:
        if "is no worse" in s["explanation"]:
            assert s["ci_high"] <= 0, s["explanation"]
    assert "-0.00" not in text and "0.0 h" not in text and "0.0 hours" not in text
    assert not re.search(r"\b\d+\.\d+ (users|events|sessions)\b", text)

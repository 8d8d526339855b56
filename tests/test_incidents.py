"""Several incidents at once: a multi-incident drill (built-in texts, and the generic
JSONL/CSV text form) triaged by case.incidents() / `forensics incidents`; suspects, impact
and the post-mortem follow every incident; the written post-mortem agrees with itself."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import UsageError
from forensics.drills.corpus import read_texts
from forensics.drills.mix import generate_mix
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """refusal+leak: a prompt change in support_chat and a retrieval index in doc_qa,
    with decoys and messy reality; loaded, detected and clustered once."""
    folder = tmp_path_factory.mktemp("mix")
    manifest = generate_mix(folder / "d", "refusal+leak", seed=3, events=6_000, days=5)
    with forensics.open(folder / "case.duckdb") as case:
        for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
            case.load(folder / "d" / name)
        case.detect()
        case.cluster()
    return folder / "case.duckdb", manifest


@pytest.fixture
def case(drill: tuple[Path, dict[str, Any]], tmp_path: Path) -> Any:
    path = tmp_path / "case.duckdb"
    shutil.copy(drill[0], path)
    c = forensics.open(path)
    yield c
    c.close()


def test_each_planted_incident_is_listed_once_with_its_cause_on_top(
        case: Any, drill: tuple[Path, dict[str, Any]]) -> None:
    manifest = drill[1]
    inc = case.incidents()
    found = inc.incidents()
    assert len(found) == len(manifest["incidents"]) == 2
    for truth in manifest["incidents"]:
        row = next(r for r in found if truth["feature"] in r["features"])
        assert set(truth["families"]) <= set(row["families"])
        assert row["top_suspect"] == truth["cause"]["change_id"]
        assert abs(row["users"] - truth["affected"]["users"]) <= 0.1 * truth["affected"]["users"]
    # the data leak ranks first, although the refusals are the larger pattern
    assert found[0]["families"] == ["data_leak"] and found[0]["severity"] == "critical"
    assert inc.meta["overall_severity"] == "critical"
    base = inc.df.filter(inc.df["kind"] == "baseline")
    assert base.height >= 1 and base["onset"].null_count() == base.height
    assert all(r["requests_before"] > 0 for r in base.to_dicts())
    with pytest.raises(UsageError, match="no incident 'INC-9'"):
        inc.incident("INC-9")


def test_stages_default_to_every_incident_or_take_one_by_id(case: Any) -> None:
    sus = case.suspects()
    assert sus.df["incident_id"].unique().sort().to_list() == ["INC-1", "INC-2"]
    tops = {r["incident_id"]: r["change_id"] for r in sus.df.filter(
        sus.df["rank"] == 1).to_dicts()}
    assert tops == {i["incident_id"]: i["top_suspect"] for i in case.incidents().incidents()}
    one = case.impact("INC-2")
    every = case.impact()
    by_id = {r["incident_id"]: r["users"] for r in every.df.filter(
        every.df["cohort"] == "all").to_dicts()}
    assert by_id["INC-2"] == one.meta["users"]
    assert case.severity("INC-1").meta["level"] == "critical"


def test_cli_incidents_json(case: Any) -> None:
    path = str(case.path)
    case.close()
    out = CliRunner().invoke(cli, ["incidents", path, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["ok"] and doc["verb"] == "incidents"
    assert [i["incident_id"] for i in doc["incidents"]] == ["INC-1", "INC-2"]
    assert doc["baselines"] and all(b["kind"] == "baseline" for b in doc["baselines"])


TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)? UTC"


def facts_in(part: str) -> dict[str, set[str]]:
    """Every named time and count one part of the post-mortem states, by name."""
    seen: dict[str, set[str]] = {}

    def put(name: str, value: str) -> None:
        seen.setdefault(name.strip().lower(), set()).add(value.strip())

    for t, name in re.findall(rf"^\| ({TIME}) \| ([^|]+?) \|", part, flags=re.M):
        if name.startswith(("first ", "incident onset", "last ")):
            put(name, t)
    for name, t in re.findall(rf"the (first [a-z ]+?) (?:was at|at) ({TIME})", part):
        put(name, t)
    for name, t in re.findall(rf"^\| (first exposure|last exposure) \| ({TIME}) \|", part,
                              flags=re.M):
        put(name, t)
    between = re.search(rf"Between ({TIME}) and ({TIME}), (\S+) users in (\S+) sessions "
                        r"received (\S+) responses", part)
    if between:
        put("first exposure", between.group(1))
        put("last exposure", between.group(2))
        for name, v in zip(("users", "sessions", "events"), between.groups()[2:], strict=True):
            put(name, v)
    for name, v in re.findall(r"^\| (users|sessions|events) \| (\S+) \|", part, flags=re.M):
        put(name, v)
    return seen


def test_postmortem_has_a_section_per_incident_and_agrees_with_itself(
        case: Any, tmp_path: Path) -> None:
    r = case.postmortem(tmp_path / "pm", evals=False)
    assert r.meta["overall_severity"] == "critical"
    assert [i["incident_id"] for i in r.meta["incidents"]] == ["INC-1", "INC-2"]
    md = (tmp_path / "pm" / "postmortem.md").read_text(encoding="utf-8")
    assert "## Incidents in this case" in md and "## Incident INC-2:" in md
    assert "Overall severity: **critical**" in md
    parts = re.split(r"^## Incident (INC-\d+)", md, flags=re.M)
    sections = dict(zip(parts[1::2], parts[2::2], strict=True))
    assert set(sections) == {"INC-1", "INC-2"}
    triage = {i["incident_id"]: i for i in case.incidents().incidents()}
    checked = 0
    for iid, text in sections.items():
        text = text.split("## Evidence appendix")[0]      # the appendix holds raw tables
        for name, values in facts_in(text).items():
            assert len(values) == 1, f"{iid}: {name!r} has two values: {sorted(values)}"
            checked += 1
        onset = re.search(rf"^\| ({TIME}) \| incident onset \|", text, flags=re.M)
        assert onset is not None
        assert onset.group(1).startswith(str(triage[iid]["onset"])[:16])
        users = facts_in(text)["users"]
        assert users == {f"{triage[iid]['users']:,}"}
    assert checked >= 12


def test_generic_texts_file_and_drill_cli(tmp_path: Path) -> None:
    rows = [{"input": "How do I export my notes?", "output": "Use File > Export.",
             "category": "normal"},
            {"input": "Can I get a refund?", "output": "I'm sorry, I can't help with that.",
             "category": "refusal"},
            {"input": "Who is the HR contact?", "output": "Call Ann Lee at +1 415 555 0101 "
             "or ann.lee@contoso.example.com.", "category": "leak"}]
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_texts(texts)["category"].to_list() == ["normal", "refusal", "leak"]
    out = CliRunner().invoke(cli, ["drill", str(tmp_path / "d"), "--texts", str(texts),
                                   "--events", "2000", "--days", "4", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["text_sources"]["refusal"] == "texts.jsonl"
    assert doc["text_sources"]["malformed_json"].startswith("built-in")
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert [i["cause"]["change_id"] for i in man["incidents"]] == ["CHG-9101", "CHG-9202"]
    events = [json.loads(x) for x in (tmp_path / "d" / "events.jsonl").open()]
    assert "_outcome" not in events[0] and "x_experiment" in events[0]
    assert any(e["user_id"] is None for e in events)        # messy: null users
    bad = tmp_path / "bad.csv"
    bad.write_text("input,output,category\nq,a,oops\n", encoding="utf-8")
    with pytest.raises(UsageError, match="unknown category 'oops'"):
        read_texts(bad)


@pytest.mark.corpus
def test_corpus_texts_give_every_category() -> None:
    df = read_texts(CORPUS / "texts")
    got = set(df["category"].unique().to_list())
    assert {"refusal", "leak", "wrong_language", "malformed_json", "harmful",
            "truncated", "hallucination", "normal", "normal_json"} <= got
    lang = df.filter(df["source"] == "language_confusion")
    assert lang["language"].null_count() == 0          # the language the user asked for

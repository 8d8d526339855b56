"""Property: nulls in any column and unknown extra columns never crash a stage, and never
silently change its answer.

Each generated case is a few days of traffic on two features with a refusal regression
after a declared prompt change, some leaked e-mail addresses, tool calls, moderation
decisions and feedback. Hypothesis nulls random cells of every column (ids, users,
sessions, features, versions, texts, metadata) and adds columns no mapping knows. Then
every stage runs: detect, cluster, suspects, impact, severity, the incident timeline, the
triage of incidents and the post-mortem. The answers are checked against the same case
without the nulls and extras:

- an unknown extra column changes nothing (labels, impact counts);
- an event none of whose fields was nulled gets the same per-event labels;
- impact counts every pattern event, also those with no user (nothing silently dropped).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import forensics

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
COLUMNS = ["trace_id", "ts", "user_id", "session_id", "feature", "model", "prompt_version",
           "input_text", "output_text", "finish_reason", "status", "locale",
           "request_language", "tool_name", "policy_decision", "moderations", "tenant"]
# Labels that depend on other events (a tool "new" relative to history, feedback joined
# by trace) are not per-event verdicts.
CONTEXT_LABELS = {"new_tool_action", "negative_feedback"}
N = 240


def base_events(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(N):
        t = T0 + dt.timedelta(minutes=int(i * 24 + rng.integers(0, 20)))
        feature = "support_chat" if i % 3 else "doc_qa"
        new = feature == "support_chat" and t >= T0 + dt.timedelta(days=2)
        out = ("I'm sorry, but I can't help with that request." if new and rng.random() < 0.5
               else "Your invoice is available under Settings > Billing > Invoices.")
        if feature == "doc_qa" and rng.random() < 0.1:
            out = "You can reach Tom Becker at tom.becker@contoso-hr.example.com."
        row: dict[str, Any] = {
            "event_id": f"e{i}", "trace_id": f"t{i}", "ts": t.isoformat().replace("+00:00", "Z"),
            "user_id": f"u{i % 37}", "session_id": f"s{i % 53}", "feature": feature,
            "model": "gpt-4o", "prompt_version": "v2" if new else "v1",
            "input_text": "Where can I download my invoices for last year?",
            "output_text": out, "finish_reason": "stop", "status": "ok",
            "locale": ["ja-JP", "de-DE", "en-US"][i % 3], "request_language": None,
            "tenant": ["acme", "globex"][i % 2]}
        if i % 17 == 0:
            row.update(tool_name="issue_refund", policy_decision="deny" if i % 34 else "allow")
        if i % 19 == 0:
            row["moderations"] = [{"stage": "output", "category": "harassment",
                                   "flagged": True, "score": 0.9, "action": "block"}]
        if i % 29 == 0:      # a guardrail that logs a decision with no category
            row["moderations"] = [{"stage": "output", "category": None, "flagged": True,
                                   "score": None, "action": "log"}]
        rows.append(row)
    return rows


def write_case(folder: Path, rows: list[dict[str, Any]]) -> Any:
    events = folder / "events.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    changes = folder / "changes.jsonl"
    changes.write_text(json.dumps({"change_id": "CHG-1", "ts": "2026-03-03T00:00:00Z",
                                   "kind": "prompt", "feature": "support_chat",
                                   "from": "v1", "to": "v2"}) + "\n", encoding="utf-8")
    feedback = folder / "feedback.jsonl"
    feedback.write_text("".join(json.dumps({"event_id": r["event_id"], "ts": "2026-03-06T00:00Z",
                                            "name": "thumbs", "value": "down"}) + "\n"
                                for r in rows[::23]), encoding="utf-8")
    case = forensics.open(folder / "case.duckdb")
    for path in (events, changes, feedback):
        case.load(path)
    return case


def run_stages(case: Any, folder: Path) -> dict[str, Any]:
    """Every stage once; what each answered."""
    case.detect()
    case.cluster()
    out: dict[str, Any] = {}
    out["labels"] = {(r[0], r[1]) for r in case.con.execute(
        "SELECT event_id, label FROM labels WHERE source = 'rule'").fetchall()}
    out["suspects"] = case.suspects("refusal").df.height
    imp = case.impact("refusal")
    out["impact"] = (imp.meta.get("events"), imp.meta.get("users"))
    out["pattern_events"] = case.con.execute(
        "SELECT count(*) FROM event_facts WHERE list_contains(labels, 'refusal')").fetchone()[0]
    out["severity"] = case.severity("refusal").meta.get("level")
    out["timeline"] = case.incident_timeline("refusal").df.height
    out["incidents"] = case.incidents().df.height
    case.postmortem(folder / "pm", evals=False)
    out["postmortem"] = (folder / "pm" / "postmortem.md").is_file()
    return out


_BASELINES: dict[int, dict[str, Any]] = {}


def baseline(seed: int) -> dict[str, Any]:
    if seed not in _BASELINES:
        with tempfile.TemporaryDirectory() as tmp:
            case = write_case(Path(tmp), base_events(seed))
            try:
                _BASELINES[seed] = run_stages(case, Path(tmp))
            finally:
                case.close()
    return _BASELINES[seed]


cells = st.lists(st.tuples(st.integers(0, N - 1), st.sampled_from(COLUMNS)), max_size=120)
extras = st.dictionaries(st.from_regex(r"x_[a-z]{1,8}", fullmatch=True),
                         st.one_of(st.none(), st.integers(), st.text(max_size=8),
                                   st.lists(st.integers(), max_size=3)), max_size=4)


@settings(max_examples=4, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(seed=st.integers(0, 1), nulls=cells, extra=extras)
def test_nulls_and_extra_columns_neither_crash_nor_change_answers(
        seed: int, nulls: list[tuple[int, str]], extra: dict[str, Any]) -> None:
    rows = base_events(seed)
    touched = {rows[i]["event_id"] for i, _ in nulls}
    for i, col in nulls:
        rows[i][col] = None
    for r in rows:
        r.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
        case = write_case(Path(tmp), rows)
        try:
            got = run_stages(case, Path(tmp))
            loaded, rejected = case.count("events"), case.count("rejects")
        finally:
            case.close()
    want = baseline(seed)
    # A record with no time stamp cannot be placed on the timeline: it is rejected with
    # its reason, never lost (records in = loaded + rejected).
    assert loaded + rejected == N and rejected == len({i for i, c in nulls if c == "ts"})
    assert got["postmortem"]
    # The events nothing was nulled in keep every per-event verdict.
    keep = lambda s: {x for x in s if x[0] not in touched and x[1] not in CONTEXT_LABELS}  # noqa: E731
    assert keep(got["labels"]) == keep(want["labels"])
    # Impact counts every pattern event, with a user or not.
    assert got["impact"][0] == got["pattern_events"]
    if not nulls:        # extra unknown columns alone: the very same answers
        assert got == want

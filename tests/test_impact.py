"""Who was hurt: exact impact, cohorts, suppression, sampled-review estimates, findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import forensics
from forensics.core.errors import UsageError

from .conftest import event, feedback, write_jsonl


@pytest.fixture
def hurt(tmp_path: Path) -> Any:
    """60 events; every 5th is an error (12 bad events), users u0..u8, two plans."""
    recs = [event(i, status="error" if i % 5 == 0 else "ok", plan=["pro", "free"][i % 2],
                  session_id=f"s{i % 9}", user_id=f"u{i % 9}") for i in range(60)]
    c = forensics.open(tmp_path / "c.duckdb")
    c.load(write_jsonl(tmp_path / "a.jsonl", recs))
    c.load(write_jsonl(tmp_path / "fb.jsonl", [
        {"event_id": "e10", "ts": "2026-03-02T00:00:00Z", "name": "complaint",
         "value": "wrong answer", "user_id": "u1"}]))
    yield c
    c.close()


def test_exact_counts_match_a_hand_count(hurt: Any) -> None:
    r = hurt.impact()
    bad = [i for i in range(60) if i % 5 == 0] + [10]  # errors, and e10 has a complaint
    users = {f"u{i % 9}" for i in bad}
    assert r.meta["events"] == len(set(bad)) == 12
    assert r.meta["users"] == len(users) and r.meta["sessions"] == len(users)
    assert r.meta["method"] == "exact distinct"
    assert r.df.row(0, named=True)["users_who_complained"] == 1


def test_breakdown_by_cohort_and_attribute(hurt: Any) -> None:
    r = hurt.impact(by=["plan"])
    rows = {row["cohort"]: row for row in r.rows()}
    assert rows["all"]["events"] == 12 and rows["pro"]["events"] + rows["free"]["events"] == 12
    assert "sql" in r.to_dict() and "SELECT" in r.sql


def test_label_window_and_where(hurt: Any) -> None:
    hurt.con.execute("INSERT INTO labels VALUES ('e5', 'pii_leak', 'rule', 1, 'email', 'r1'),"
                     " ('e20', 'pii_leak', 'rule', 1, 'email', 'r1')")
    assert hurt.impact("pii_leak").meta["events"] == 2
    assert hurt.impact("pii_leak").meta["events"] == 2          # a label given as the pattern
    w = hurt.impact("status = 'error'",
                    window=("2026-03-01T10:00:00", "2026-03-01T10:30:00"))
    assert w.meta["events"] == 6 and w.params["w_start"] == "2026-03-01T10:00:00"
    assert w.meta["window"] == ["2026-03-01T10:00:00", "2026-03-01T10:30:00"]


def test_small_cells_are_suppressed(hurt: Any) -> None:
    r = hurt.impact(by="plan", suppress_below=10)
    assert set(r.df["users"].to_list()) == {"<10"}
    assert r.df["share_of_users"].null_count() == r.df.height


def test_one_small_cell_takes_a_second_with_it() -> None:
    """Secondary suppression: a lone hidden cell could be recovered from the total."""
    import polars as pl

    from forensics.impact.exact import suppress

    df = pl.DataFrame({"cohort": ["all", "a", "b", "c"], "users": [40, 25, 12, 3],
                       "events": [60, 30, 25, 5], "share_of_users": [1.0, 0.62, 0.3, 0.08]})
    out = suppress(df, 5)
    assert out["users"].to_list() == ["40", "25", "<5", "<5"]
    assert out["events"].to_list() == ["60", "30", "<5", "<5"]


def test_bad_cohort_column_is_refused(hurt: Any) -> None:
    with pytest.raises(UsageError):
        hurt.impact(by=["plan; DROP TABLE events"])


def test_approximate_distinct_states_its_error(hurt: Any) -> None:
    r = hurt.impact(approx=True)
    assert r.meta["relative_error"] > 0 and abs(r.meta["users"] - 9) <= 1


def test_feedback_and_complaints_are_joined(hurt: Any, tmp_path: Path) -> None:
    hurt.load(write_jsonl(tmp_path / "fb2.jsonl", [
        feedback(event_id="e20", name="thumbs", value="down", user_id="u2"),
        feedback(trace_id="t-x", name="thumbs", value="up", user_id="u3")]))
    r = hurt.impact()
    assert r.meta["complaints"] == 1 and r.meta["users_who_complained"] == 1
    assert r.meta["users_with_negative_feedback"] == 2          # e10 complaint, e20 thumbs


def test_change_scope_restricts_to_served_version_and_window(tmp_path: Path) -> None:
    """Events served by the change's new version between the change and its rollback,
    whatever the pattern does before or after."""
    recs = []
    for i in range(90):
        hour = i // 10                      # 0..8
        version = "v2" if 3 <= hour < 6 and i % 2 == 0 else "v1"
        recs.append(event(i, ts=f"2026-03-01T{hour:02d}:{i % 10:02d}:00Z",
                          prompt_version=version, user_id=f"u{i % 13}",
                          status="error" if i % 3 == 0 else "ok"))
    changes = [{"change_id": "CHG-1", "ts": "2026-03-01T03:00:00Z", "kind": "prompt",
                "feature": "support_chat", "from": "v1", "to": "v2", "note": "new prompt"},
               {"change_id": "CHG-1-RB", "ts": "2026-03-01T06:00:00Z", "kind": "prompt",
                "feature": "support_chat", "from": "v2", "to": "v1", "note": "rollback"}]
    case = forensics.open(tmp_path / "c.duckdb")
    case.load(write_jsonl(tmp_path / "e.jsonl", recs))
    case.load(write_jsonl(tmp_path / "ch.jsonl", changes))
    r = case.impact("status = 'error'", change="CHG-1")
    hit = [i for i in range(90) if 3 <= i // 10 < 6 and i % 2 == 0 and i % 3 == 0]
    assert r.meta["events"] == len(hit)
    assert r.meta["window"] == ["2026-03-01 03:00:00", "2026-03-01 06:00:00"]
    assert r.meta["exposed_events"] == 15 and r.meta["change"]["to_version"] == "v2"
    assert case.impact("CHG-1").meta["events"] == len(hit)       # a change id as pattern
    with pytest.raises(UsageError):
        case.impact(change="CHG-404")
    case.close()


def test_impact_cli_prints_users_sessions_events_and_window(hurt: Any) -> None:
    import json

    from click.testing import CliRunner

    from forensics.cli.main import cli

    path = str(hurt.path)
    hurt.close()
    out = CliRunner().invoke(cli, ["impact", path, "--where", "status = 'error'", "--json"])
    data = json.loads(out.output)
    assert out.exit_code == 0 and data["users"] == 9 and data["events"] == 12
    assert data["window"]["start"].startswith("2026-03-01T10:00")
    hurt.__init__(path)                                  # reopen for the fixture's close


def test_findings_record_rerun_check(hurt: Any, tmp_path: Path) -> None:
    fid = hurt.record(hurt.impact(by=["plan"]), "Users hit by errors", note="exact")
    assert fid == "F001"
    from forensics.core.findings import record_once

    assert record_once(hurt, hurt.impact(by=["plan"]), "again") == "F001"
    assert record_once(hurt, hurt.impact(by=["feature"]), "other") == "F002"
    listed = hurt.findings().rows()
    assert listed[0]["title"] == "Users hit by errors" and listed[0]["evidence"] == 2
    assert len(listed) == 2
    assert hurt.check_finding(fid)["reproduced"] is True
    more = write_jsonl(tmp_path / "more.jsonl", [event(100, status="error", user_id="u77")])
    hurt.load(more)
    check = hurt.check_finding(fid)
    assert check["reproduced"] is False and check["evidence_added"]
    with pytest.raises(UsageError):
        hurt.check_finding("F999")

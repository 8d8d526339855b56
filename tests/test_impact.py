"""Who was hurt: exact impact, cohorts, suppression, sampled-review estimates, findings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import forensics
from forensics.errors import UsageError

from .conftest import event, write_jsonl


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
    assert hurt.impact(label="pii_leak").meta["events"] == 2
    w = hurt.impact(where="status = 'error'",
                    window=("2026-03-01T10:00:00", "2026-03-01T10:30:00"))
    assert w.meta["events"] == 6 and w.params["start"] == "2026-03-01T10:00:00"


def test_small_cells_are_suppressed(hurt: Any) -> None:
    r = hurt.impact(by="plan", suppress_below=10)
    assert set(r.df["users"].to_list()) == {"<10"}


def test_bad_cohort_column_is_refused(hurt: Any) -> None:
    with pytest.raises(UsageError):
        hurt.impact(by=["plan; DROP TABLE events"])


def test_approximate_distinct_states_its_error(hurt: Any) -> None:
    r = hurt.impact(approx=True)
    assert r.meta["relative_error"] > 0 and abs(r.meta["users"] - 9) <= 1


def _review(case: Any, verdicts: dict[str, str]) -> None:
    case.con.executemany("INSERT INTO labels VALUES (?, ?, 'reviewer', 1, NULL, 'review')",
                         list(verdicts.items()))


def test_estimate_with_full_review_is_exact(hurt: Any) -> None:
    errors = [f"e{i}" for i in range(0, 60, 5)]
    _review(hurt, {e: ("confirmed" if int(e[1:]) % 10 == 0 else "false_positive")
                   for e in errors})
    r = hurt.estimate_impact(flagged="status = 'error'", strata="none")
    assert r.meta["events_estimate"] == r.meta["events_low"] == r.meta["events_high"] == 6
    assert r.meta["users_low"] == r.meta["users_high"] == r.meta["users_estimate"]


def test_estimate_interval_covers_truth_usually() -> None:
    """Coverage of the events interval on a synthetic population (the drill benchmark
    measures it on realistic cases)."""
    import polars as pl

    from forensics.impact import _events_estimate

    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(200):
        truth = rng.random(400) < 0.3
        sample = rng.choice(400, 60, replace=False)
        per = pl.DataFrame({"stratum": ["a"], "flagged": [400], "reviewed": [60],
                            "confirmed": [int(truth[sample].sum())]})
        _, low, high = _events_estimate(per, 0.95)
        covered += low <= truth.sum() <= high
    assert 0.90 <= covered / 200 <= 0.99


def test_findings_record_rerun_check(hurt: Any, tmp_path: Path) -> None:
    fid = hurt.record(hurt.impact(by=["plan"]), "Users hit by errors", note="exact")
    assert fid == "F001"
    listed = hurt.findings().rows()
    assert listed[0]["title"] == "Users hit by errors" and listed[0]["evidence"] == 2
    assert hurt.check_finding(fid)["reproduced"] is True
    more = write_jsonl(tmp_path / "more.jsonl", [event(100, status="error", user_id="u77")])
    hurt.load(more)
    check = hurt.check_finding(fid)
    assert check["reproduced"] is False and check["evidence_added"]
    with pytest.raises(UsageError):
        hurt.check_finding("F999")

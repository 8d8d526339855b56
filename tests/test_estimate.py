"""Sampled-review estimation: exact under a full review, honest intervals under a sample,
reproducible review samples, verdicts from labels or reviewer feedback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import UsageError
from forensics.impact.estimate import Population, allocate

from .conftest import event, feedback, write_jsonl


@pytest.fixture
def flagged(tmp_path: Path) -> Any:
    """120 events from 30 users over five hours; every third is flagged (label `flag`),
    and of those the ones at even minutes are truly bad."""
    recs = [event(i, ts=f"2026-03-01T{10 + i // 30:02d}:{i % 30:02d}:00Z",
                  user_id=f"u{i % 30}", session_id=f"s{i % 40}",
                  locale=["en-US", "de-DE"][i % 2]) for i in range(120)]
    case = forensics.open(tmp_path / "c.duckdb")
    case.load(write_jsonl(tmp_path / "e.jsonl", recs))
    case.con.execute("INSERT INTO labels SELECT event_id, 'flag', 'rule', 1, NULL, 'r' FROM events "
                     "WHERE CAST(substr(event_id, 2) AS INTEGER) % 3 = 0")
    yield case
    case.close()


def _truth(case: Any) -> tuple[set[str], set[str]]:
    rows = case.sql("SELECT event_id, user_id, minute(ts) AS m FROM events WHERE "
                    "CAST(substr(event_id, 2) AS INTEGER) % 3 = 0").rows()
    bad = [r for r in rows if r["m"] % 2 == 0]
    return {r["event_id"] for r in bad}, {r["user_id"] for r in bad}


def _review(case: Any, ids: list[str]) -> None:
    bad, _ = _truth(case)
    case.con.executemany("INSERT INTO labels VALUES (?, ?, 'reviewer', 1, NULL, 'review')",
                         [[e, "confirmed" if e in bad else "not_bad"] for e in ids])


def test_full_review_is_exact(flagged: Any) -> None:
    ids = flagged.sql("SELECT event_id FROM event_facts WHERE list_contains(labels, 'flag')"
                      ).df["event_id"].to_list()
    _review(flagged, ids)
    r = flagged.estimate_impact("flag", strata="none")
    bad, users = _truth(flagged)
    m = r.meta
    assert m["events_estimate"] == m["events_low"] == m["events_high"] == len(bad)
    assert m["users_estimate"] == m["users_low"] == m["users_high"] == len(users)
    assert "finite-population" in m["method"]


def test_sampled_review_interval_and_strata(flagged: Any) -> None:
    pick = flagged.review_sample("flag", n=20, strata="locale", seed=1)
    assert pick.df.height == 20
    assert sorted(pick.df.group_by("stratum").len()["len"].to_list()) == [10, 10]
    assert pick.df.equals(flagged.review_sample("flag", n=20, strata="locale", seed=1).df)
    _review(flagged, pick.df["event_id"].to_list())
    r = flagged.estimate_impact("flag", strata="locale", reps=1000)
    bad, users = _truth(flagged)
    m = r.meta
    assert m["reviewed_events"] == 20 and m["flagged_events"] == 40
    assert m["events_low"] <= len(bad) <= m["events_high"]
    assert m["users_low"] <= len(users) <= m["users_high"]
    assert m["users_low"] >= m["users_confirmed"]
    assert set(r.df["stratum"].to_list()) == {"en-US", "de-DE"}


def test_reviewer_feedback_counts_as_a_verdict(flagged: Any, tmp_path: Path) -> None:
    flagged.load(write_jsonl(tmp_path / "review.jsonl", [
        feedback(event_id="e0", name="verdict", value="bad", source="reviewer"),
        feedback(event_id="e3", name="verdict", value="ok", source="reviewer")]))
    m = flagged.estimate_impact("flag", strata="none").meta
    assert m["reviewed_events"] == 2 and m["confirmed_in_review"] == 1


def test_no_review_is_an_error_with_a_hint(flagged: Any) -> None:
    with pytest.raises(UsageError) as err:
        flagged.estimate_impact("flag")
    assert "review_sample" in err.value.hint


def test_estimate_cli(flagged: Any) -> None:
    _review(flagged, ["e0", "e3", "e6", "e9"])
    path = str(flagged.path)
    flagged.close()
    out = CliRunner().invoke(cli, ["estimate", path, "--flagged", "flag", "--strata", "none",
                                   "--json"])
    data = json.loads(out.output)
    assert out.exit_code == 0 and data["meta"]["reviewed_events"] == 4
    flagged.__init__(path)


def test_allocation() -> None:
    assert allocate(np.array([90, 10]), 20).tolist() == [18, 2]
    assert allocate(np.array([1000, 3, 1]), 10).tolist() == [7, 2, 1]
    assert allocate(np.array([5, 5]), 50).tolist() == [5, 5]


def _population(rng: np.random.Generator, clustered: bool) -> pl.DataFrame:
    """600 flagged events of 300 users with a skewed activity; truth either independent
    per event or decided per user (a cohort the bad version served)."""
    users = rng.choice(300, size=600, p=np.arange(300, 0, -1) / np.arange(300, 0, -1).sum())
    if clustered:
        truth = (rng.random(300) < 0.4)[users] & (rng.random(600) < 0.8)
    else:
        truth = rng.random(600) < 0.35
    return pl.DataFrame({"event_id": [f"e{i:04d}" for i in range(600)],
                         "user_id": [f"u{u}" for u in users], "stratum": "all",
                         "truth": truth})


@pytest.mark.parametrize("clustered", [False, True])
def test_interval_coverage_on_synthetic_reviews(clustered: bool) -> None:
    """The 95% intervals cover the truth in most of 60 sampled reviews (the drill
    benchmark in bench/bench_impact.py measures coverage on realistic cases)."""
    hits_e = hits_u = 0
    for rep in range(60):
        rng = np.random.default_rng(rep)
        pop = _population(rng, clustered)
        reviewed = np.zeros(600, dtype=bool)
        reviewed[rng.choice(600, 80, replace=False)] = True
        table = pop.with_columns(reviewed=pl.Series(reviewed),
                                 confirmed=pl.Series(reviewed) & pl.col("truth"))
        p = Population.from_frame(table)
        ev, us = p.event_draws(600, rng), p.user_draws(600, rng)
        true_users = pop.filter(pl.col("truth"))["user_id"].n_unique()
        hits_e += np.quantile(ev, 0.025) <= pop["truth"].sum() <= np.quantile(ev, 0.975)
        hits_u += np.quantile(us, 0.025) <= true_users <= np.quantile(us, 0.975)
    assert hits_e >= 52 and hits_u >= 52

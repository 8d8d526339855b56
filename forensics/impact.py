"""Who was hurt: affected users, sessions and events, exactly or estimated from a review.

>>> case.impact(label="pii_leak", by=["plan", "locale"])             # doctest: +SKIP
>>> case.estimate_impact(flagged="list_contains(labels, 'pii_leak')",
...                      confirmed="reviewer_confirmed")              # doctest: +SKIP

Exact counts are set-based SQL over ``event_facts``. For very large cases an approximate
distinct count (HyperLogLog, ``approx_count_distinct``) is offered with its stated error.
When reviewers judged only a sample of the flagged events, :func:`estimate` gives the
truly affected events and users with a confidence interval: stratified by cluster (or
any column), finite-population corrected for events, and a stratified bootstrap that
re-draws the unreviewed events' verdicts for users.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from .db import frame
from .errors import UsageError
from .result import Result

if TYPE_CHECKING:
    from .case import Case

COHORTS = ("feature", "plan", "locale", "region", "client_version", "tenant", "model",
           "prompt_version", "retrieval_version", "release")
HLL_RELATIVE_ERROR = 0.0163  # DuckDB's approx_count_distinct: HyperLogLog, 2^12 registers
_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ImpactResult(Result):
    kind = "impact"

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        rows = self.df.filter(pl.col("cohort") != "all")
        if rows.height == 0:
            rows = self.df
        labels = [str(v) for v in rows["cohort"].to_list()]
        ax.barh(labels[::-1], rows["users"].to_list()[::-1], color="#c0392b")
        ax.set_xlabel("affected users")
        ax.set_title(self.title)
        return ax


def _filters(label: str | None, cluster: str | None, where: str | None,
             window: tuple[Any, Any] | None) -> tuple[list[str], dict[str, Any]]:
    conds, params = [], {}
    if label is not None:
        conds.append("list_contains(labels, $label)")
        params["label"] = label
    if cluster is not None:
        conds.append("event_id IN (SELECT event_id FROM cluster_members "
                     "WHERE cluster_id = $cluster)")
        params["cluster"] = cluster
    if where:
        conds.append(f"({where})")
    if window is not None:
        conds.append("ts >= CAST($start AS TIMESTAMP) AND ts < CAST($end AS TIMESTAMP)")
        params["start"], params["end"] = str(window[0]), str(window[1])
    if label is None and cluster is None and not where:
        conds.append("is_bad")
    return conds, params


def _cohort_expr(by: list[str]) -> str:
    for column in by:
        if column not in COHORTS and not _SAFE.match(column):
            raise UsageError(f"cannot break impact down by {column!r}",
                             hint=f"use one of {', '.join(COHORTS)} or an attributes key")
    parts = [c if c in COHORTS else f"attributes ->> '{c}'" for c in by]
    return " || ' / ' || ".join(f"coalesce(CAST({p} AS VARCHAR), '?')" for p in parts)


def impact(case: Case, *, label: str | None = None, cluster: str | None = None,
           where: str | None = None, window: tuple[Any, Any] | None = None,
           by: list[str] | str | None = None, approx: bool = False,
           suppress_below: int = 0) -> ImpactResult:
    """Exact distinct users, sessions and events affected, overall and per cohort.

    ``label`` / ``cluster`` / ``where`` (SQL over ``event_facts``) choose the pattern
    (default: any bad signal); ``window`` = (start, end) bounds the exposure window.
    Each row: users, sessions, events, first and last exposure, users hit more than
    once, users who complained, and the cohort's share of affected users. Cells with
    fewer than ``suppress_below`` users are shown as ``<k`` (for exports)."""
    by = [by] if isinstance(by, str) else list(by or [])
    conds, params = _filters(label, cluster, where, window)
    cohort = _cohort_expr(by) if by else "'all'"
    users = "approx_count_distinct(user_id)" if approx else "count(DISTINCT user_id)"
    sessions = "approx_count_distinct(session_id)" if approx else "count(DISTINCT session_id)"
    sql = f"""
WITH hit AS (SELECT * FROM event_facts WHERE {' AND '.join(conds)}),
per_user AS (SELECT user_id, count(*) AS n FROM hit GROUP BY user_id),
complained AS (SELECT DISTINCT user_id FROM hit WHERE negative_feedback),
rows AS (
    SELECT {cohort} AS cohort, {users} AS users, {sessions} AS sessions, count(*) AS events,
           min(ts) AS first_exposure, max(ts) AS last_exposure,
           count(DISTINCT user_id) FILTER (WHERE user_id IN (SELECT user_id FROM per_user
                                                          WHERE n > 1)) AS users_hit_repeatedly,
           count(DISTINCT user_id) FILTER (WHERE user_id IN (SELECT user_id FROM complained))
               AS users_who_complained
    FROM hit GROUP BY ALL
)
SELECT *, round(users / nullif(sum(users) OVER (), 0), 4) AS share_of_users FROM rows
ORDER BY users DESC"""
    df = frame(case.con, sql, params)
    totals = _totals(case, conds, params, approx)
    if by:
        df = pl.concat([pl.DataFrame([{**totals, "cohort": "all", "share_of_users": 1.0}],
                                     schema=df.schema), df], how="vertical_relaxed") \
            if df.height else df
    if suppress_below:
        df = suppress(df, suppress_below)
    meta = {**{k: totals[k] for k in ("users", "sessions", "events")},
            "first_exposure": totals["first_exposure"], "last_exposure": totals["last_exposure"],
            "window": [str(w) for w in window] if window else None,
            "pattern": label or cluster or where or "any bad signal",
            "method": "approximate distinct (HyperLogLog)" if approx else "exact distinct"}
    if approx:
        meta["relative_error"] = HLL_RELATIVE_ERROR
    return ImpactResult(df, sql=sql, params=params, title=f"impact: {meta['pattern']}",
                        meta=meta)


def _totals(case: Case, conds: list[str], params: dict[str, Any],
            approx: bool) -> dict[str, Any]:
    users = "approx_count_distinct(user_id)" if approx else "count(DISTINCT user_id)"
    sessions = "approx_count_distinct(session_id)" if approx else "count(DISTINCT session_id)"
    sql = (f"SELECT {users} AS users, {sessions} AS sessions, count(*) AS events, "
           "min(ts) AS first_exposure, max(ts) AS last_exposure "
           f"FROM event_facts WHERE {' AND '.join(conds)}")
    row = frame(case.con, sql, params).to_dicts()[0]
    repeat = frame(case.con, "SELECT count(*) AS n FROM (SELECT user_id FROM event_facts WHERE "
                   f"{' AND '.join(conds)} GROUP BY user_id HAVING count(*) > 1)",
                   params).to_dicts()[0]["n"]
    complained = frame(case.con, "SELECT count(DISTINCT user_id) AS n FROM event_facts WHERE "
                       f"{' AND '.join(conds)} AND negative_feedback", params).to_dicts()[0]["n"]
    row.update(users_hit_repeatedly=repeat, users_who_complained=complained)
    return row


def suppress(df: pl.DataFrame, k: int) -> pl.DataFrame:
    """Small cells: counts of fewer than ``k`` users become the text ``<k`` (k-anonymity
    for anything exported)."""
    count_cols = [c for c in ("users", "sessions", "events", "users_hit_repeatedly",
                              "users_who_complained") if c in df.columns]
    small = pl.col("users") < k
    return df.with_columns([pl.when(small & (pl.col(c) < k)).then(pl.lit(f"<{k}"))
                            .otherwise(pl.col(c).cast(pl.Utf8)).alias(c) for c in count_cols])


# ---------------------------------------------------------------------------------------
# estimation from a sampled review

class EstimateResult(Result):
    kind = "impact_estimate"


def estimate(case: Case, *, flagged: str, confirmed: str = "confirmed",
             rejected: str | None = None, strata: str = "cluster", level: float = 0.95,
             reps: int = 1000, seed: int = 0) -> EstimateResult:
    """Estimate truly affected events and users when reviewers judged only a sample.

    ``flagged``: SQL over ``event_facts`` choosing the flagged events (the population).
    A flagged event is reviewed when it has a reviewer label (``labels.source =
    'reviewer'``); ``confirmed`` is the reviewer label that means "really bad"
    (any other reviewer label counts as not bad, or only ``rejected`` when given).
    ``strata``: ``cluster`` (latest clustering run), a column of ``event_facts``, or
    ``none``. Events: stratified ratio estimator with finite-population correction
    (normal interval, clipped to what is possible). Users: stratified bootstrap: the
    verdict rates are re-drawn from the reviewed sample, the unreviewed events' verdicts
    drawn from them, distinct users counted; percentile interval."""
    table = _review_table(case, flagged, confirmed, rejected, strata)
    if table.height == 0:
        raise UsageError("no flagged events match", hint="check the `flagged` condition")
    per = _strata_summary(table)
    events = _events_estimate(per, level)
    users = _users_bootstrap(table, per, level, reps, seed)
    method = (f"stratified by {strata}; events: stratified estimator with finite-population "
              f"correction, {level:.0%} normal interval; users: stratified bootstrap "
              f"({reps} draws), percentile interval")
    meta = {"flagged_events": table.height,
            "reviewed_events": int(per["reviewed"].sum()),
            "confirmed_in_review": int(per["confirmed"].sum()),
            "events_estimate": events[0], "events_low": events[1], "events_high": events[2],
            "users_estimate": users[0], "users_low": users[1], "users_high": users[2],
            "flagged_users": table["user_id"].n_unique(), "method": method,
            "small_sample": bool((per["reviewed"] < 30).any())}
    return EstimateResult(per, sql=table_sql(flagged, strata), title="estimated impact",
                          params={"confirmed": confirmed, "rejected": rejected,
                                  "strata": strata, "level": level, "reps": reps,
                                  "seed": seed, "flagged": flagged}, meta=meta)


def table_sql(flagged: str, strata: str) -> str:
    if strata == "cluster":
        stratum = ("coalesce((SELECT any_value(m.cluster_id) FROM cluster_members m "
                   "WHERE m.event_id = f.event_id AND m.run_id = (SELECT run_id FROM runs "
                   "WHERE stage = 'cluster' ORDER BY created_at DESC LIMIT 1)), 'none')")
    elif strata == "none":
        stratum = "'all'"
    elif _SAFE.match(strata):
        stratum = f"coalesce(CAST(f.{strata} AS VARCHAR), '?')"
    else:
        raise UsageError(f"cannot stratify by {strata!r}")
    return f"""
SELECT f.event_id, f.user_id, {stratum} AS stratum,
       r.verdicts
FROM event_facts f
LEFT JOIN (SELECT event_id, list(label) AS verdicts FROM labels WHERE source = 'reviewer'
           GROUP BY event_id) r USING (event_id)
WHERE {flagged}"""


def _review_table(case: Case, flagged: str, confirmed: str, rejected: str | None,
                  strata: str) -> pl.DataFrame:
    df = frame(case.con, table_sql(flagged, strata))
    if df.height == 0:
        return df
    verdicts = pl.col("verdicts")
    is_confirmed = verdicts.list.contains(confirmed).fill_null(False)
    if rejected is None:
        reviewed = verdicts.is_not_null()
    else:
        reviewed = (is_confirmed | verdicts.list.contains(rejected)).fill_null(False)
    return df.with_columns(reviewed=reviewed, confirmed=is_confirmed & reviewed)


def _strata_summary(table: pl.DataFrame) -> pl.DataFrame:
    return (table.group_by("stratum")
            .agg(flagged=pl.len(), reviewed=pl.col("reviewed").sum(),
                 confirmed=pl.col("confirmed").sum())
            .with_columns(rate=pl.when(pl.col("reviewed") > 0)
                          .then(pl.col("confirmed") / pl.col("reviewed")).otherwise(None))
            .sort("stratum"))


def _events_estimate(per: pl.DataFrame, level: float) -> tuple[float, float, float]:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    N = per["flagged"].to_numpy().astype(float)
    n = per["reviewed"].to_numpy().astype(float)
    x = per["confirmed"].to_numpy().astype(float)
    # A stratum nobody reviewed borrows the pooled rate (stated via small_sample).
    pooled = x.sum() / n.sum() if n.sum() else 0.5
    p = np.where(n > 0, x / np.maximum(n, 1), pooled)
    total = float(x.sum() + ((N - n) * p).sum())
    var_p = np.where(n > 1, p * (1 - p) / np.maximum(n - 1, 1), 0.25)
    fpc = np.where(N > 0, 1 - n / np.maximum(N, 1), 0)
    se = float(np.sqrt(((N ** 2) * fpc * var_p).sum()))
    low = max(float(x.sum()), total - z * se)
    high = min(float(N.sum() - (n - x).sum()), total + z * se)
    return round(total, 1), round(low, 1), round(high, 1)


def _users_bootstrap(table: pl.DataFrame, per: pl.DataFrame, level: float, reps: int,
                     seed: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    strata = per["stratum"].to_list()
    index = {s: i for i, s in enumerate(strata)}
    s_idx = np.array([index[s] for s in table["stratum"].to_list()])
    reviewed = table["reviewed"].to_numpy()
    confirmed = table["confirmed"].to_numpy()
    users, u_idx = np.unique(table["user_id"].fill_null("?").to_numpy(), return_inverse=True)
    n = per["reviewed"].to_numpy()
    x = per["confirmed"].to_numpy()
    pooled = x.sum() / n.sum() if n.sum() else 0.5
    open_ = ~reviewed
    sure = np.zeros(len(users), dtype=bool)
    sure[u_idx[confirmed]] = True
    counts = np.empty(reps)
    for r in range(reps):
        # re-draw each stratum's confirmation rate from its reviewed sample
        rate = np.where(n > 0, rng.binomial(np.maximum(n, 1), np.where(n > 0, x / np.maximum(
            n, 1), pooled)) / np.maximum(n, 1), pooled)
        bad = rng.random(open_.sum()) < rate[s_idx[open_]]
        hit = sure.copy()
        hit[u_idx[open_][bad]] = True
        counts[r] = hit.sum()
    point = float(np.mean(counts))
    tail = (1 - level) / 2 * 100
    return (round(point, 1), float(np.percentile(counts, tail)),
            float(np.percentile(counts, 100 - tail)))

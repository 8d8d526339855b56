"""Who was hurt when reviewers judged only a sample of the flagged events.

>>> pick = case.review_sample("over_refusal", n=60)
>>> pick.df.height
60
>>> # reviewers judge the picked events: labels(source='reviewer', label='confirmed' / other)
>>> from pathlib import Path
>>> rows = [f"{e},{'confirmed' if i % 4 else 'rejected'}"
...         for i, e in enumerate(pick.df["event_id"])]
>>> _ = Path("verdicts.csv").write_text("event_id,label\\n" + "\\n".join(rows) + "\\n")
>>> _ = case.import_labels("verdicts.csv")
>>> est = case.estimate_impact("over_refusal")
>>> est.meta["users_low"] <= est.meta["users_estimate"] <= est.meta["users_high"]
True

The population is the flagged events (a label, cluster or SQL condition). A flagged
event is *reviewed* when it carries a reviewer verdict: a ``labels`` row with
``source = 'reviewer'`` (``confirmed`` means really bad; any other label, or only
``rejected`` when given, means not bad) or a ``feedback`` row from a reviewer
(``negative`` means really bad).

Events: the truly bad events among the unreviewed ones are drawn per stratum from the
finite-population posterior predictive (beta-binomial with the Jeffreys prior): this is
the stratified estimator with its finite-population correction, and unlike the normal
interval it keeps its coverage at small samples and rates near 0 or 1.

Users: a user is hit when any of their flagged events is truly bad, so a user with
several flagged events must be counted once, whatever the verdicts of the others. Each
hit user is counted at their *first* truly bad flagged event: ``y_e`` is 1 when ``e`` is
bad and none of the user's earlier flagged events is, so the total of ``y`` over the
flagged events is the number of users hit, and it is estimated like the events
(stratified, finite-population posterior predictive). For a reviewed event ``y`` is known
unless its user has earlier unreviewed flagged events; then it is imputed: each of those
is bad at the rate of its (stratum, time bucket) cell, estimated from the reviewed events
of the cell (so events before an incident's onset count at the rate before the onset),
raised by the within-user dependence: the odds ratio of an event being bad when a later
event of the same user is, fitted to the reviewed events that precede a confirmed one
under a Bayesian bootstrap over their users (a normal prior on its log keeps it near 1
when few users were reviewed twice). Imputations are drawn (multiple imputation), so
their uncertainty is in the interval, which is clipped to what is known: at least the
users with a confirmed event, at most the users not cleared by review. With a full
review both totals are exact. Coverage on drills and on synthetic populations with
independent, per-user and latent-effect verdicts is in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy import special
from scipy import stats as sps

from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import column
from forensics.core.result import Result
from forensics.core.selection import Pattern, select

CELL_PRIOR = 2.0     # events' worth of prior on a (stratum, time) cell's rate
LIFT_PRIOR_SD = 1.5  # prior sd of the within-user log odds ratio, see Population.user_lift
JEFFREYS = 0.5
REVIEWER_SOURCES = ("reviewer", "review", "annotator", "human_review", "qa")


class EstimateResult(Result):
    """Per-stratum review counts and rates; the totals and intervals are in ``meta``."""

    kind = "impact_estimate"

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        rows = self.df.filter(pl.col("reviewed") > 0)
        labels = [str(s) for s in rows["stratum"].to_list()]
        rate = rows["rate"].to_numpy()
        err = np.vstack([rate - rows["rate_low"].to_numpy(), rows["rate_high"].to_numpy() - rate])
        ax.errorbar(rate, labels, xerr=err, fmt="o", color="#c0392b", capsize=3)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("share of flagged events confirmed by review (95% interval)")
        ax.set_title(self.title)
        return ax


# ---------------------------------------------------------------------------------------
# SQL: the flagged population with its verdicts and strata

def _stratum_sql(strata: str) -> str:
    if strata == "cluster":
        return "coalesce(cm.cluster_id, 'unclustered')"
    if strata == "none":
        return "'all'"
    return f"coalesce(CAST({column(strata)} AS VARCHAR), '?')"


def population_sql(flagged: str, strata: str = "cluster") -> str:
    """The flagged events, one row each: user, stratum, reviewed, confirmed.

    Parameters: ``$confirmed`` (the confirming reviewer label), ``$rejected`` (or NULL:
    any other reviewer label is a rejection), ``$reviewers`` (feedback sources that are
    reviewers), plus those of ``flagged``."""
    return f"""
WITH run AS (
    SELECT coalesce((SELECT run_id FROM runs WHERE stage = 'cluster'
                     ORDER BY created_at DESC, run_id DESC LIMIT 1),
                    (SELECT max(run_id) FROM cluster_members)) AS run_id
), cm AS (
    SELECT event_id, min(cluster_id) AS cluster_id FROM cluster_members
    WHERE run_id = (SELECT run_id FROM run) GROUP BY event_id
), verdict AS (
    SELECT event_id, label = $confirmed AS bad,
           label = $confirmed OR $rejected IS NULL OR label = $rejected AS counts
    FROM labels WHERE source = 'reviewer'
    UNION ALL
    SELECT event_id, coalesce(negative, false), true FROM feedback
    WHERE event_id IS NOT NULL AND list_contains($reviewers, lower(source))
), v AS (
    SELECT event_id, bool_or(bad AND counts) AS confirmed, bool_or(counts) AS reviewed,
           bool_or(bad AND counts) AND bool_or(counts AND NOT bad) AS disagreement
    FROM verdict GROUP BY event_id
)
SELECT f.event_id, coalesce(f.user_id, '(no user) ' || f.event_id) AS user_id, f.ts,
       {_stratum_sql(strata)} AS stratum,
       coalesce(v.reviewed, false) AS reviewed, coalesce(v.confirmed, false) AS confirmed,
       coalesce(v.disagreement, false) AS disagreement
FROM event_facts f
LEFT JOIN cm ON cm.event_id = f.event_id
LEFT JOIN v ON v.event_id = f.event_id
WHERE {flagged}
ORDER BY f.event_id"""


# ---------------------------------------------------------------------------------------
# choosing what to review

def review_sample(case: CaseHandle, pattern: Pattern, n: int, *, strata: str = "cluster",
                  seed: int = 0, min_per_stratum: int = 2) -> Result:
    """Pick ``n`` flagged events for review: stratified, proportional allocation (at least
    ``min_per_stratum`` per stratum when it has them), random within a stratum by a
    seeded hash, so the same call picks the same events.

    >>> a = case.review_sample("over_refusal", n=20, seed=1).df["event_id"].to_list()
    >>> a == case.review_sample("over_refusal", n=20, seed=1).df["event_id"].to_list()
    True
    """
    sel = select(case, pattern)
    cond, params, desc = sel.condition, dict(sel.params), sel.description
    sizes = frame(case.con, f"SELECT stratum, count(*) AS n FROM ({population_sql(cond, strata)}) "
                  "GROUP BY ALL ORDER BY stratum", {**params, **_verdict_params()})
    take = allocate(sizes["n"].to_numpy(), n, min_per_stratum)
    sql = f"""
WITH pop AS ({population_sql(cond, strata)}),
alloc AS (SELECT unnest($s_strata) AS stratum, unnest($s_take) AS take),
ranked AS (
    SELECT pop.*, row_number() OVER (
        PARTITION BY pop.stratum
        ORDER BY hash(concat(CAST($s_seed AS VARCHAR), ':', pop.event_id)), pop.event_id) AS k
    FROM pop)
SELECT r.event_id, r.user_id, r.stratum FROM ranked r JOIN alloc a USING (stratum)
WHERE r.k <= a.take ORDER BY r.stratum, r.event_id"""
    full = {**params, **_verdict_params(), "s_strata": sizes["stratum"].to_list(),
            "s_take": [int(t) for t in take], "s_seed": int(seed)}
    df = frame(case.con, sql, full)
    meta = {"flagged": int(sizes["n"].sum()), "sample": df.height, "strata": sizes.height,
            "pattern": desc, "allocation": "proportional, at least "
            f"{min_per_stratum} per stratum", "seed": seed}
    return Result(df, sql=sql, params=full, title=f"review sample: {desc}", meta=meta)


def allocate(sizes: np.ndarray, n: int, minimum: int = 2) -> np.ndarray:
    """Proportional allocation of ``n`` over strata of ``sizes`` (largest remainder), at
    least ``minimum`` per stratum where the stratum has that many.

    >>> allocate(np.array([90, 10]), 20).tolist()
    [18, 2]
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(min(n, sizes.sum()))
    floor = np.minimum(sizes, minimum)
    if floor.sum() >= n:
        return _largest_remainder(floor.astype(float), n, floor)
    share = sizes / sizes.sum() * n
    take = np.minimum(np.maximum(np.floor(share).astype(np.int64), floor), sizes)
    while take.sum() > n:      # the minimums pushed us over: trim the largest
        take[np.argmax(take - floor)] -= 1
    room = sizes - take
    rest = n - int(take.sum())
    order = np.lexsort((-sizes, -(share - np.floor(share))))
    for i in order:
        if rest == 0:
            break
        add = min(int(room[i]), rest)
        take[i] += add
        rest -= add
    return take


def _largest_remainder(weights: np.ndarray, n: int, cap: np.ndarray) -> np.ndarray:
    share = weights / weights.sum() * n
    take = np.minimum(np.floor(share).astype(np.int64), cap)
    for i in np.argsort(-(share - np.floor(share)), kind="stable"):
        if take.sum() >= n:
            break
        if take[i] < cap[i]:
            take[i] += 1
    return take


# ---------------------------------------------------------------------------------------
# estimation

def _verdict_params(confirmed: str = "confirmed", rejected: str | None = None) -> dict[str, Any]:
    return {"confirmed": confirmed, "rejected": rejected, "reviewers": list(REVIEWER_SOURCES)}


def estimate(case: CaseHandle, pattern: Pattern, *, confirmed: str = "confirmed",
             rejected: str | None = None, strata: str = "cluster", level: float = 0.95,
             reps: int = 2000, seed: int = 0) -> EstimateResult:
    """Estimate the truly affected events and users when reviewers judged a sample.

    ``pattern``: the flagged events (the population): a label, cluster id, failure
    family or SQL condition over ``event_facts`` (:func:`forensics.core.selection.select`).
    ``strata``: ``cluster`` (latest clustering run), a column of
    ``event_facts`` / an attributes key, or ``none``. See the module docstring for the
    method; ``meta['method']`` states it for the report.

    >>> case.estimate_impact("over_refusal", strata="none").meta["flagged_events"]
    498
    """
    sel = select(case, pattern)
    cond, params, desc = sel.condition, dict(sel.params), sel.description
    params = {**params, **_verdict_params(confirmed, rejected)}
    sql = population_sql(cond, strata)
    table = frame(case.con, sql, params)
    if table.height == 0:
        raise UsageError("no flagged events match", hint="check the pattern")
    if not table["reviewed"].any():
        raise UsageError("none of the flagged events has a reviewer verdict",
                         hint="add labels with source='reviewer' (label 'confirmed' or "
                              "another verdict) for a sample: case.review_sample(...)")
    pop = Population.from_frame(table)
    rng = np.random.default_rng(seed)
    ev = pop.event_draws(reps, rng)
    us = pop.user_draws(reps, rng)
    tail = (1 - level) / 2
    per = pop.strata_frame(level)
    meta = {
        "pattern": desc, "flagged_events": int(pop.N.sum()), "flagged_users": pop.n_users,
        "reviewed_events": int(pop.n.sum()), "confirmed_in_review": int(pop.x.sum()),
        "review_disagreements": int(table["disagreement"].sum()),
        "events_estimate": round(pop.events_point(), 1),
        "events_low": _q(ev, tail, "lower"), "events_high": _q(ev, 1 - tail, "higher"),
        "users_estimate": round(pop.users_point(), 1),
        "users_low": _q(us, tail, "lower"), "users_high": _q(us, 1 - tail, "higher"),
        "users_confirmed": pop.sure_users, "users_cleared": pop.clear_users,
        "users_with_several_reviews": pop.multi_reviewed_users, "level": level,
        "strata": per.height, "unreviewed_strata": int((per["reviewed"] == 0).sum()),
        "small_sample": bool((per["reviewed"] < 30).any()),
        "method": method_text(strata, level, reps)}
    meta["settings"] = {"strata": strata, "level": level, "reps": reps, "seed": seed}
    return EstimateResult(per, sql=sql, params=params, title=f"estimated impact: {desc}",
                          meta=meta)


def method_text(strata: str, level: float, reps: int) -> str:
    return (f"sampled review, stratified by {strata}; events: finite-population posterior "
            "predictive per stratum (beta-binomial, Jeffreys prior); users: each hit user "
            "counted at their first truly bad flagged event, estimated the same way, that "
            "event's status imputed where the user has earlier unreviewed events (rates per "
            "stratum and time, within-user odds ratio by a Bayesian bootstrap over users); "
            f"{level:.0%} equal-tailed intervals from {reps} draws")


def _q(draws: np.ndarray, q: float, method: str) -> float:
    return float(np.quantile(draws, q, method=method))  # type: ignore[call-overload]


@dataclass
class Population:
    """The flagged events reduced to the small arrays the estimators need."""

    strata: list[str]
    N: np.ndarray            # flagged events per stratum
    n: np.ndarray            # reviewed per stratum
    x: np.ndarray            # confirmed per stratum
    n_users: int
    sure_users: int          # users with a confirmed event
    clear_users: int         # users whose flagged events were all reviewed and rejected
    cell_stratum: np.ndarray  # (C,) stratum of each (stratum, time bucket) cell
    cell_n: np.ndarray       # (C,) reviewed events per cell
    cell_x: np.ndarray       # (C,) confirmed events per cell
    first_s: np.ndarray      # (F,) per confirmed event: its stratum
    first_blocked: np.ndarray  # (F,) an earlier flagged event of its user is confirmed
    first_open: np.ndarray   # (F, C) its user's earlier unreviewed events per cell
    pair_cell: np.ndarray    # (P,) reviewed events before a confirmed event of their user:
    pair_bad: np.ndarray     # (P,)   their cell, their verdict,
    pair_user: np.ndarray    # (P,)   their user (an index, for the bootstrap over users)
    multi_reviewed_users: int

    @classmethod
    def from_frame(cls, table: pl.DataFrame, buckets: int = 24) -> Population:
        """``table``: event_id, user_id, stratum, reviewed, confirmed (booleans) and
        optionally ts (the order in which a user met the events, and the time buckets)."""
        strata = sorted(table["stratum"].unique().to_list())
        h = len(strata)
        t = table.with_columns(
            s=pl.col("stratum").replace_strict(strata, list(range(h)), return_dtype=pl.Int64),
            b=_bucket(table, buckets))
        width = int(t.select(pl.col("b").max()).item() or 0) + 1
        t = t.with_columns(cell=pl.col("s") * width + pl.col("b"))
        t = t.sort(["user_id", "ts", "event_id"] if "ts" in t.columns else ["user_id",
                                                                            "event_id"])
        per = (t.group_by("s").agg(N=pl.len(), n=pl.col("reviewed").sum(),
                                   x=pl.col("confirmed").sum()).sort("s"))
        n_cells = h * width
        rev = t.filter(pl.col("reviewed"))
        cell_n = np.bincount(rev["cell"].to_numpy(), minlength=n_cells)
        cell_x = np.bincount(rev.filter(pl.col("confirmed"))["cell"].to_numpy(),
                             minlength=n_cells)
        cell_s = np.arange(n_cells) // width
        users = t.group_by("user_id").agg(
            hit=pl.col("confirmed").any(), clear=pl.col("reviewed").all(),
            reviewed=pl.col("reviewed").sum())
        hit = t.filter(pl.col("user_id").is_in(
            users.filter(pl.col("hit"))["user_id"].implode()))
        first_s, blocked, open_ = _first_bad(hit, n_cells)
        pairs = _earlier_verdicts(hit)
        return cls(strata, per["N"].to_numpy(), per["n"].to_numpy(), per["x"].to_numpy(),
                   users.height, int(users["hit"].sum()),
                   int((users["clear"] & ~users["hit"]).sum()), cell_s, cell_n, cell_x,
                   first_s, blocked, open_, pairs["cell"].to_numpy(),
                   pairs["confirmed"].to_numpy(), pairs["u"].to_numpy(),
                   int((users["reviewed"] >= 2).sum()))

    # -- events ----------------------------------------------------------------------
    def rate_draws(self, reps: int, rng: np.random.Generator,
                   x: np.ndarray | None = None) -> np.ndarray:
        """(reps, H) rates from the Jeffreys posterior of ``x`` (default: the confirmed;
        may be (reps, H)) out of the reviewed; an unreviewed stratum borrows the pooled
        rate."""
        x = self.x if x is None else x
        pooled_a = x.sum(axis=-1, keepdims=True) + JEFFREYS
        pooled_b = self.n.sum() - x.sum(axis=-1, keepdims=True) + JEFFREYS
        a = np.where(self.n > 0, x + JEFFREYS, pooled_a)
        b = np.where(self.n > 0, self.n - x + JEFFREYS, pooled_b)
        return rng.beta(a, b, size=(reps, len(self.N)) if x.ndim == 1 else None)

    def event_draws(self, reps: int, rng: np.random.Generator) -> np.ndarray:
        """Truly bad flagged events per draw: the confirmed, plus a posterior-predictive
        draw of the bad among the unreviewed, per stratum."""
        p = self.rate_draws(reps, rng)
        return self.x.sum() + rng.binomial(self.N - self.n, p).sum(axis=1)

    def events_point(self) -> float:
        return self._point(self.x.astype(float))

    def _point(self, x: np.ndarray) -> float:
        pooled = x.sum() / self.n.sum() if self.n.sum() else 0.0
        rate = np.where(self.n > 0, x / np.maximum(self.n, 1), pooled)
        return float(x.sum() + ((self.N - self.n) * rate).sum())

    # -- users -----------------------------------------------------------------------
    def cell_rates(self, p: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """(R, C): the rate of truly bad events per (stratum, time bucket) cell: a beta
        posterior from the cell's reviewed events with a prior worth
        :data:`CELL_PRIOR` events centred on the stratum's rate ``p`` (R, H); the
        posterior mean when ``rng`` is None."""
        prior = p[:, self.cell_stratum]
        a = self.cell_x[None, :] + CELL_PRIOR * prior
        b = (self.cell_n - self.cell_x)[None, :] + CELL_PRIOR * (1 - prior)
        return a / (a + b) if rng is None else rng.beta(a, b)

    def user_lift(self, q: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """(R,): the log odds ratio of a flagged event being bad when a later flagged event
        of the same user is, against its cell's rate ``q`` (R, C): fitted to the reviewed
        events that precede a confirmed one, under a Bayesian bootstrap over their users
        (``rng`` None: unweighted), with a normal prior of sd :data:`LIFT_PRIOR_SD`."""
        reps = q.shape[0]
        if not len(self.pair_bad):
            return np.zeros(reps) if rng is None else \
                np.asarray(rng.normal(0, LIFT_PRIOR_SD, reps), dtype=float)
        n_users = int(self.pair_user.max()) + 1
        w = np.ones((reps, n_users)) if rng is None else rng.gamma(1.0, size=(reps, n_users))
        w = w[:, self.pair_user]                                           # (R, P)
        logit = special.logit(np.clip(q[:, self.pair_cell], 1e-9, 1 - 1e-9))
        beta = np.zeros(reps)
        for _ in range(25):                     # Newton on the penalised log-likelihood
            fit = special.expit(logit + beta[:, None])
            grad = (w * (self.pair_bad - fit)).sum(axis=1) - beta / LIFT_PRIOR_SD ** 2
            hess = (w * fit * (1 - fit)).sum(axis=1) + 1 / LIFT_PRIOR_SD ** 2
            beta = beta + np.clip(grad / hess, -2, 2)
        return beta

    def first_chance(self, q: np.ndarray) -> np.ndarray:
        """(R, F): the chance that each confirmed event is its user's first truly bad
        flagged event: no earlier unreviewed event of the user was bad (cell rates ``q``)."""
        if not len(self.first_s):
            return np.zeros((q.shape[0], 0))
        none = np.exp(self.first_open @ np.log1p(-np.clip(q, 0, 1 - 1e-12)).T).T
        return np.where(self.first_blocked[None, :], 0.0, none)

    def user_draws(self, reps: int, rng: np.random.Generator) -> np.ndarray:
        """Users hit per draw. Each hit user is counted once, at their first flagged
        event that is truly bad (``y``); the total of ``y`` over the flagged events is
        estimated like the events: the reviewed events' ``y`` is imputed (a confirmed
        event is first unless an earlier unreviewed event of its user was bad, at its
        cell's rate), the unreviewed drawn per stratum from the posterior predictive."""
        h = len(self.N)
        q = self.cell_rates(self.rate_draws(reps, rng), rng)
        beta = self.user_lift(q, rng)
        q = special.expit(special.logit(np.clip(q, 1e-9, 1 - 1e-9)) + beta[:, None])
        first = rng.random((reps, len(self.first_s))) < self.first_chance(q)
        y = first.astype(float) @ np.eye(h)[self.first_s]                     # (R, H)
        p = self.rate_draws(reps, rng, x=y)
        total = y.sum(axis=1) + rng.binomial(self.N - self.n, p).sum(axis=1)
        return np.clip(total, self.sure_users, self.n_users - self.clear_users)

    def users_point(self) -> float:
        p = ((self.x + JEFFREYS) / (self.n + 2 * JEFFREYS))[None, :]
        q = self.cell_rates(p, None)
        beta = self.user_lift(q, None)
        q = special.expit(special.logit(np.clip(q, 1e-9, 1 - 1e-9)) + beta[:, None])
        chance = self.first_chance(q)[0]
        y = np.bincount(self.first_s, weights=chance, minlength=len(self.N))
        return min(max(self._point(y), self.sure_users), self.n_users - self.clear_users)

    def strata_frame(self, level: float) -> pl.DataFrame:
        tail = (1 - level) / 2
        a, b = self.x + JEFFREYS, self.n - self.x + JEFFREYS
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(self.n > 0, self.x / np.maximum(self.n, 1), np.nan)
        low = np.where(self.x == 0, 0.0, sps.beta.ppf(tail, a, b))
        high = np.where(self.x == self.n, 1.0, sps.beta.ppf(1 - tail, a, b))
        low, high = np.where(self.n > 0, low, np.nan), np.where(self.n > 0, high, np.nan)
        pooled = self.x.sum() / self.n.sum() if self.n.sum() else 0.0
        est = self.x + (self.N - self.n) * np.where(self.n > 0, np.nan_to_num(rate), pooled)
        return pl.DataFrame({"stratum": self.strata, "flagged": self.N, "reviewed": self.n,
                             "confirmed": self.x, "rate": rate, "rate_low": low,
                             "rate_high": high, "events_estimate": np.round(est, 1)})


def _bucket(table: pl.DataFrame, buckets: int) -> pl.Expr:
    """Time bucket index of each event: about ``buckets`` equal buckets over the flagged
    events' span, at least an hour wide (one bucket without timestamps)."""
    if "ts" not in table.columns or table["ts"].null_count() == table.height:
        return pl.lit(0, dtype=pl.Int64)
    lo, hi = table["ts"].min(), table["ts"].max()
    span = (hi - lo).total_seconds() \
        if isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime) else 0.0
    width = max(3600.0, float(np.ceil(span / buckets / 3600.0)) * 3600.0)
    return (((pl.col("ts") - pl.lit(lo)).dt.total_seconds() // width).fill_null(0)
            .cast(pl.Int64))


def _earlier_verdicts(hit: pl.DataFrame) -> pl.DataFrame:
    """Reviewed events that precede a confirmed event of their user (``hit`` sorted by
    user and time): cell, confirmed, and a user index."""
    later = (pl.col("confirmed").cast(pl.Int64).reverse().cum_sum().reverse()
             - pl.col("confirmed").cast(pl.Int64)).over("user_id")
    rows = hit.with_columns(later=later).filter(pl.col("reviewed") & (pl.col("later") > 0))
    return rows.select("cell", "confirmed", u=pl.col("user_id").rank("dense").cast(pl.Int64) - 1)


def _first_bad(hit: pl.DataFrame, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each confirmed event (``hit``: the events of users with one, sorted by user and
    time): its stratum, whether an earlier event of its user is confirmed, and the user's
    earlier unreviewed events per cell (F, C)."""
    if hit.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros((0, cells))
    t = hit.with_row_index("i").with_columns(
        before=pl.col("confirmed").cast(pl.Int64).cum_sum().over("user_id")
        - pl.col("confirmed").cast(pl.Int64))
    conf = t.filter(pl.col("confirmed")).with_row_index("f")
    pairs = (conf.select("f", "i", "user_id")
             .join(t.filter(~pl.col("reviewed")).select("user_id", j="i", c="cell"),
                   on="user_id")
             .filter(pl.col("j") < pl.col("i")).group_by("f", "c").len())
    open_ = np.zeros((conf.height, cells))
    open_[pairs["f"].to_numpy(), pairs["c"].to_numpy()] = pairs["len"].to_numpy()
    return conf["s"].to_numpy(), (conf["before"] > 0).to_numpy(), open_




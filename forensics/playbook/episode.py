"""When a bad pattern started, whether it stopped, and how high it ran: the episode that the
playbook analytics (severity, detection gap, containment what-if, incident timeline) share.

>>> ep = episode(case, "over_refusal")
>>> str(ep.meta["onset"]), str(ep.meta["subsided_at"]), ep.meta["ongoing"]
('2026-03-09 09:00:00', '2026-03-11 14:00:00', False)

One scan of the events aggregates the pattern to (feature, bucket): events and pattern
events. The onset is the change point of :func:`forensics.cause.suspects.suspects` (binomial binary
segmentation over all traffic and per feature, the strongest rise wins); everything after
runs on the small bucketed table.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from forensics.cause.changepoints import hours, rate_series, strongest_onset
from forensics.cause.changes import changes, interval
from forensics.cause.suspects import suspects
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern, select
from forensics.playbook.milestones import recorded, to_utc

RECENT_BUCKETS = 6        # "still ongoing" looks at the last this-many buckets of the data
RAMP_HOURS = 12           # a gradual rollout's first, small steps: how far back they may go

BUCKETS_SQL = """
SELECT coalesce(feature, '(none)') AS feature,
       time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket, count(*) AS n,
       count(*) FILTER (WHERE coalesce({cond}, false)) AS bad
FROM {relation}
WHERE ts IS NOT NULL
GROUP BY ALL"""


@dataclass(frozen=True)
class Scan:
    """What the big scans read: the pattern's condition over ``relation``. A pattern that
    is only a label or only a cluster is a semi-join on ``labels`` / ``cluster_members``
    and holds over plain ``events``, so the scans skip the joins of the ``event_facts``
    view (about ten times faster); the condition holds over ``event_facts`` too."""

    cond: str
    params: dict[str, Any]
    desc: str
    relation: str = "event_facts"


def resolve(case: CaseHandle, pattern: Pattern = None) -> Scan:
    """The scan for ``pattern`` (any value :func:`forensics.core.selection.select`
    takes; nothing given: any bad signal)."""
    sel = select(case, pattern)
    if sel.events_condition is not None and sel.kind in ("label", "cluster"):
        return Scan(sel.events_condition, dict(sel.params), sel.description, "events")
    return Scan(sel.condition, dict(sel.params), sel.description)


class EpisodeResult(Result):
    """The pattern per bucket in the scope where it rose (``.df``), with onset, end and
    baseline in ``meta``; ``.buckets`` holds every feature's bucketed counts."""

    kind = "episode"

    def __init__(self, df: pl.DataFrame, *, buckets: pl.DataFrame, pattern: Scan,
                 step_hours: float, **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.buckets = buckets
        self.pattern = pattern
        self.step_hours = step_hours

    # -- convenience for the stages that build on an episode ---------------------------
    @property
    def onset(self) -> dt.datetime | None:
        return self.meta.get("onset")

    @property
    def feature(self) -> str | None:
        return self.meta.get("feature")

    @property
    def step(self) -> dt.timedelta:
        return dt.timedelta(hours=self.step_hours)

    @property
    def data_end(self) -> dt.datetime:
        return self.meta["data_end"]

    def scope_series(self, feature: str | None) -> pl.DataFrame:
        """(bucket, n, bad) for one feature or all (``None``) on the episode's bucket grid,
        empty buckets included."""
        s = rate_series(self.buckets, self.step_hours, feature)
        grid = self.df.select("bucket")
        return grid.join(s, on="bucket", how="left").fill_null(0) if s.height else \
            grid.with_columns(n=pl.lit(0), bad=pl.lit(0))

    def index(self, ts: dt.datetime | None) -> int | None:
        """Position of the bucket holding ``ts`` on the grid (clipped to the grid)."""
        if ts is None or self.df.height == 0:
            return None
        first = self.df["bucket"][0]
        k = math.floor((ts - first).total_seconds() / (self.step_hours * 3600))
        return int(min(max(k, 0), self.df.height))

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 3.6))
        b = self.df["bucket"].to_list()
        ax.plot(b, self.df["rate"].to_list(), color="#2c3e50", lw=1.0, label="pattern rate")
        ax.fill_between(b, self.df["low"].fill_null(0).to_list(),
                        self.df["high"].fill_null(0).to_list(), color="#2c3e50", alpha=0.15)
        return mark_times(ax, self.meta, [("onset", "#c0392b", "-"),
                                          ("subsided_at", "#27ae60", "-")], self.title)


def mark_times(ax: Any, meta: dict[str, Any], marks: list[tuple[str, str, str]],
               title: str) -> Any:
    """Vertical lines at the times ``meta`` holds for ``marks`` (key, colour, line style),
    then the axis labels shared by the playbook charts."""
    for key, colour, style in marks:
        if meta.get(key):
            ax.axvline(meta[key], color=colour, ls=style, lw=1.3, label=key.replace("_", " "))
    ax.set_ylabel("share of events")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left")
    return ax


def episode(case: CaseHandle, pattern: Pattern = None, *, bucket: str = "1h",
            onset: Any = None, feature: str | None = None, suspect: bool | str = True,
            lookback: str = "72h", method: str = "binseg") -> EpisodeResult:
    """Onset, end and baseline of a bad pattern.

    - ``change_point``: the strongest rise over all traffic and per feature
      (:func:`stats.onset`; ``feature`` forces the scope), moved earlier when the buckets
      just before it already ran significantly above the baseline (a gradual rollout's
      first, small step: :func:`extend_left`).
    - ``suspect``: the top-ranked change of :func:`forensics.cause.suspects.suspects` (``True``),
      a change id from :func:`forensics.cause.changes.changes` (``"CHG-2041"``), or none
      (``False``).
    - ``onset``: the start of the incident: given (``onset=``); else the suspect change's
      deploy time when the suspect is a likely cause on the scope's feature that landed
      within ``lookback`` before the change point (the incident began when the bad
      version started serving, even if its first hours showed little); else the change
      point. ``onset_source`` says which.
    - ``baseline_rate``: the scope's pattern rate before the onset; ``subsided_at``: the
      first downward change point after the onset back to within twice the baseline;
      ``ongoing``: not subsided and the last buckets still run above the baseline
      (one-sided test at 5 %).

    >>> episode(case, "status = 'error'").meta["onset"] is None     # a steady background
    True
    """
    pat = resolve(case, pattern)
    params = {**pat.params, "bucket": interval(bucket)}
    sql = BUCKETS_SQL.format(cond=pat.cond, relation=pat.relation)
    buckets = frame(case.con, sql, params)
    if buckets.height == 0:
        raise UsageError("no events in the case", hint="load evidence first: case.load(...)")
    step = hours(bucket)
    found: stats.Onset | None = None
    point: dt.datetime | None = None
    if onset is None:
        found, feature_found, point = strongest_onset(buckets, rate_series(buckets, step),
                                                      step, method)
        feature = feature if feature is not None else feature_found
    grid = rate_series(buckets, step, feature)
    span: tuple[dt.datetime, dt.datetime] | None = None
    if point is not None:
        x, m = grid["bad"].to_numpy(), grid["n"].to_numpy()
        k = extend_left(x, m, _position(grid, point, step), max_back=int(RAMP_HOURS / step))
        lo, hi = change_point_interval(x, m, k)
        point, span = grid["bucket"][k], (grid["bucket"][lo], grid["bucket"][hi])
    # the suspect anchors an onset that was found; a named change is always looked up
    chosen = _suspect(case, suspect, pattern, bucket) \
        if isinstance(suspect, str) or (onset is None and point is not None) else None
    onset_ts, source = _anchor(onset, span, chosen, feature, step, hours(lookback), buckets)
    onset_ts = point if source == "change point" else onset_ts
    rate, low, high = stats.wilson_arrays(grid["bad"].to_numpy(), grid["n"].to_numpy())
    df = grid.with_columns(pl.Series("rate", rate).fill_nan(None),
                           pl.Series("low", low).fill_nan(None),
                           pl.Series("high", high).fill_nan(None))
    meta: dict[str, Any] = {"pattern": pat.desc, "bucket": bucket, "feature": feature,
                            "scope": feature or "all features", "onset": onset_ts,
                            "onset_source": source, "change_point": point,
                            "change_point_interval": span,
                            "change_point_method": method, "suspect": chosen,
                            "data_start": grid["bucket"].min() if grid.height else None,
                            "data_end": _data_end(grid, step)}
    if found is not None:
        meta.update(rate_before=found.before, rate_after=found.after, onset_llr=found.llr)
    result = EpisodeResult(df, buckets=buckets, pattern=pat, step_hours=step, sql=sql,
                           params=params, title=f"episode: {pat.desc}", meta=meta)
    result.meta.update(_course(result))
    result.meta.update(_end(case, result))
    result.meta["features_touched"] = touched_features(result)
    if onset_ts is None:
        result.meta["warning"] = "no onset found: the pattern shows no significant rise"
    return result


def extend_left(bad: np.ndarray, n: np.ndarray, k: int, max_back: int = 12,
                penalty: float | None = None) -> int:
    """Move a change point ``k`` earlier when a short run of buckets just before it already
    ran above the rate before them (a gradual rollout's first, small step): the start
    ``j`` in ``[k - max_back, k)`` maximising the one-sided binomial log-likelihood ratio
    of ``[j, k)`` against the rate of ``[0, j)``, kept when it exceeds ``penalty``
    (default ``1.5 log(max_back)``: the positions tried are few, so a smaller penalty
    than the global search's). Needs at least ``max_back`` buckets of history before.

    >>> bad = np.r_[np.full(40, 1.0), np.full(6, 4.0), np.full(10, 20.0)]
    >>> extend_left(bad, np.full(56, 100.0), 46)
    40
    >>> extend_left(bad, np.full(56, 100.0), 46, max_back=40)    # not enough history
    46
    """
    x = np.asarray(bad, dtype=float)
    m = np.asarray(n, dtype=float)
    lo = k - max_back
    if lo < max_back:                   # too little history before to judge a ramp against
        return k
    pen = penalty if penalty is not None else 1.5 * math.log(max(k - lo, 2))
    cx = np.concatenate([[0.0], np.cumsum(x)])
    cn = np.concatenate([[0.0], np.cumsum(m)])
    js = np.arange(lo, k)
    p0 = (cx[js] + 0.5) / (cn[js] + 1.0)        # half an event: no zero rate before
    xs, ns = cx[k] - cx[js], cn[k] - cn[js]
    q = np.clip(xs / np.maximum(ns, 1), 1e-12, 1 - 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = xs * np.log(q / p0) + (ns - xs) * np.log((1 - q) / (1 - p0))
    llr = np.where((q > p0) & (ns > 0), llr, -np.inf)
    best = int(np.argmax(llr))
    return int(js[best]) if llr[best] > pen else k


def change_point_interval(bad: np.ndarray, n: np.ndarray, k: int, window: int = 24,
                          level: float = 0.95) -> tuple[int, int]:
    """Likelihood interval of a change point's position: the splits ``j`` within
    ``window`` buckets of ``k`` whose binomial log-likelihood gain (over one rate for
    ``[k - window, k + window)``) is within ``chi2_1(level) / 2`` of the best split's.

    >>> bad = np.r_[np.full(30, 1.0), np.full(30, 30.0)]
    >>> change_point_interval(bad, np.full(60, 100.0), 30)
    (30, 30)
    """
    from scipy.stats import chi2

    x = np.asarray(bad, dtype=float)
    m = np.asarray(n, dtype=float)
    lo, hi = max(0, k - window), min(x.size, k + window)
    if hi - lo < 2:
        return k, k
    cx = np.concatenate([[0.0], np.cumsum(x[lo:hi])])
    cm = np.concatenate([[0.0], np.cumsum(m[lo:hi])])
    js = np.arange(1, hi - lo)
    gain = stats._binom_ll(cx[js], cm[js]) + stats._binom_ll(cx[-1] - cx[js], cm[-1] - cm[js])
    ok = js[gain >= gain.max() - chi2.ppf(level, 1) / 2] + lo
    return int(min(ok.min(), k)), int(max(ok.max(), k))


def _position(grid: pl.DataFrame, ts: dt.datetime, step: float) -> int:
    first = grid["bucket"][0]
    return round((ts - first).total_seconds() / (step * 3600))


def _suspect(case: CaseHandle, suspect: bool | str, pattern: Pattern,
             bucket: str) -> dict[str, Any] | None:
    """The change to hold responsible: the top suspect, or the named change."""

    if suspect is False:
        return None
    if isinstance(suspect, str):
        rows = changes(case, rollout=False).df.filter(pl.col("change_id") == suspect)
        if rows.height == 0:
            raise UsageError(f"no change {suspect!r} in the case",
                             hint="see case.changes() for declared and inferred change ids")
        return {**rows.row(0, named=True), "verdict": "given", "rank": None}
    ranked = suspects(case, pattern, bucket=bucket)
    if ranked.df.height == 0:
        return None
    keep = ("rank", "change_id", "kind", "feature", "column", "from_version", "to_version",
            "ts", "source", "verdict", "score", "effect", "ci_low", "ci_high", "q_value",
            "segment", "explanation")
    return {k: ranked.df.row(0, named=True)[k] for k in keep}


def _anchor(given: Any, span: tuple[dt.datetime, dt.datetime] | None,
            chosen: dict[str, Any] | None, feature: str | None, step: float, lookback: float,
            buckets: pl.DataFrame) -> tuple[dt.datetime | None, str]:
    """The onset: given; else the suspect's deploy when it is a likely cause on the scope's
    feature that landed from ``lookback`` before the change point's interval to one bucket
    after it; else the change point (the start of ``span``'s best position)."""
    if given is not None:
        return _floor(to_utc(given), step, buckets), "given"
    if span is None:
        return None, "none"
    if chosen is not None and chosen["verdict"] in ("likely cause", "given"):
        ts = _floor(chosen["ts"], step, buckets)
        same = feature is None or chosen["feature"] in (None, feature)
        if same and span[0] - dt.timedelta(hours=lookback) <= ts <= span[1] + \
                dt.timedelta(hours=step):
            return ts, f"deploy of suspect {chosen['change_id']}"
    return None, "change point"


def _floor(ts: dt.datetime, step: float, buckets: pl.DataFrame) -> dt.datetime:
    """``ts`` floored to the bucket grid of ``buckets``."""
    first = buckets["bucket"].min()
    assert isinstance(first, dt.datetime)
    k = math.floor((ts - first).total_seconds() / (step * 3600))
    return first + dt.timedelta(hours=k * step)


def _data_end(grid: pl.DataFrame, step: float) -> dt.datetime | None:
    if grid.height == 0:
        return None
    last = grid["bucket"].max()
    assert isinstance(last, dt.datetime)
    return last + dt.timedelta(hours=step)


def _course(ep: EpisodeResult) -> dict[str, Any]:
    """Baseline before the onset, peak, the return to baseline, and whether it is ongoing."""
    x = ep.df["bad"].to_numpy().astype(float)
    n = ep.df["n"].to_numpy().astype(float)
    k = ep.index(ep.onset)
    if k is None:
        return {"baseline_rate": float(x.sum() / n.sum()) if n.sum() else None,
                "baseline_bad": int(x.sum()), "baseline_n": int(n.sum()),
                "subsided_at": None, "ongoing": None}
    x0, n0 = float(x[:k].sum()), float(n[:k].sum())
    base = x0 / n0 if n0 else 0.0
    subsided = None
    for c in stats.binomial_changepoints(x, n):
        if c.index > k and not c.upward and c.after <= max(2 * base, base + 1e-9):
            subsided = ep.df["bucket"][c.index]
            break
    tail = slice(max(k, x.size - RECENT_BUCKETS), x.size)
    xr, nr = float(x[tail].sum()), float(n[tail].sum())
    elevated = bool(nr > 0 and xr / nr > base and
                    stats.two_proportion_test(x0, n0, xr, nr) / 2 < 0.05)
    return {"baseline_rate": base, "baseline_bad": int(x0), "baseline_n": int(n0),
            "history_weeks": round(k * ep.step_hours / 168, 2),
            "subsided_at": subsided, "recent_rate": xr / nr if nr else None,
            "recent_bad": int(xr), "recent_n": int(nr),
            "ongoing": subsided is None and elevated}


def _end(case: CaseHandle, ep: EpisodeResult) -> dict[str, Any]:
    """When the exposure ended: the recorded ``contained`` milestone; else a later change
    that moved the suspect's feature off its new version (a rollback or a fix); else the
    bucket its traffic left that version; else where the pattern subsided; else the end
    of the data (still exposed)."""

    sus = ep.meta.get("suspect")
    contained, source = recorded(case).get("contained"), "recorded milestone 'contained'"
    if contained is None and sus is not None and sus.get("column"):
        later = changes(case, feature=sus["feature"]).df
        off = later.filter((pl.col("column") == sus["column"]) & (pl.col("ts") > sus["ts"])
                           & (pl.col("from_version") == sus["to_version"])) \
            if later.height else later
        own = later.filter(pl.col("change_id") == sus["change_id"]) if later.height else later
        if off.height:
            row = off.sort("ts").row(0, named=True)
            contained = row["ts"]
            source = (f"change {row['change_id']} ({row['from_version']} -> "
                      f"{row['to_version']})")
        elif own.height and own["rolled_back_at"][0] is not None:
            contained, source = own["rolled_back_at"][0], f"traffic left {sus['to_version']}"
    out: dict[str, Any] = {"contained_at": contained,
                           "contained_source": source if contained else None}
    if contained is not None:
        out.update(end=contained, end_source=source, ongoing=False)
    elif ep.meta.get("subsided_at") is not None:
        out.update(end=ep.meta["subsided_at"], end_source="pattern subsided")
    else:
        out.update(end=ep.data_end, end_source="end of the data")
    return out


def touched_features(ep: EpisodeResult, alpha: float = 0.05) -> list[str]:
    """Features whose pattern rate from the onset to the end ran above their own rate
    before the onset (one-sided test, Benjamini-Hochberg across features), most excess
    events first; all features with the pattern when there is no onset."""
    b = ep.buckets
    if b.height == 0:
        return []
    if ep.onset is None:
        return sorted(b.filter(pl.col("bad") > 0)["feature"].unique().to_list())
    when = pl.when(pl.col("bucket") < ep.onset).then(pl.lit("before")) \
        .when(pl.col("bucket") < ep.meta["end"]).then(pl.lit("during")).otherwise(None)
    per = b.with_columns(when.alias("part")).drop_nulls("part") \
        .group_by("feature", "part").agg(pl.col("n").sum(), pl.col("bad").sum()) \
        .pivot(on="part", index="feature", values=["n", "bad"]).fill_null(0)
    if "bad_during" not in per.columns or "bad_before" not in per.columns:
        return []
    rows = per.to_dicts()
    p = [stats.two_proportion_test(r["bad_before"], r["n_before"], r["bad_during"],
                                   r["n_during"]) / 2
         if r["n_during"] and r["n_before"] and r["bad_during"] / r["n_during"] >
         r["bad_before"] / r["n_before"] else 1.0 for r in rows]
    q = stats.benjamini_hochberg(p)
    excess = {r["feature"]: r["bad_during"] - r["n_during"] * r["bad_before"] /
              max(r["n_before"], 1) for r in rows}
    keep = [r["feature"] for r, qv in zip(rows, q, strict=True) if qv < alpha]
    return sorted(keep, key=lambda f: -excess[f])


def first_signals(case: CaseHandle, ep: EpisodeResult) -> dict[str, Any]:
    """From the onset on, in the onset scope: the first pattern event, the first one a
    guardrail flagged, the first negative feedback and the first complaint (negative
    feedback with a written comment, or a complaint / ticket / report) on a pattern
    event or its request (trace), with how many there were."""
    sql = """
WITH p AS (
    SELECT event_id, trace_id, ts FROM {relation}
    WHERE coalesce({cond}, false) AND ts >= $since
      AND ($feature IS NULL OR coalesce(feature, '(none)') = $feature)
), flagged AS (
    SELECT ts FROM p WHERE event_id IN (SELECT event_id FROM moderations WHERE flagged)
), fb AS (
    SELECT ts, coalesce(nullif(trim(comment), ''), '') <> ''
               OR regexp_matches(lower(coalesce(name, '') || ' ' || coalesce(source, '')),
                                 'complain|ticket|report|escalat') AS complaint
    FROM feedback
    WHERE negative AND ts >= $since
      AND (event_id IN (SELECT event_id FROM p) OR trace_id IN (SELECT trace_id FROM p))
)
SELECT (SELECT min(ts) FROM p) AS first_bad_output,
       (SELECT count(*) FROM p) AS bad_outputs,
       (SELECT min(ts) FROM flagged) AS first_flag,
       (SELECT count(*) FROM flagged) AS flagged,
       (SELECT min(ts) FROM fb) AS first_negative_feedback,
       (SELECT count(*) FROM fb) AS negative_feedback,
       (SELECT min(ts) FROM fb WHERE complaint) AS first_complaint,
       (SELECT count(*) FROM fb WHERE complaint) AS complaints"""
    since = ep.onset or dt.datetime(1970, 1, 1)
    params = {**ep.pattern.params, "since": since, "feature": ep.feature}
    row = frame(case.con, sql.format(cond=ep.pattern.cond, relation=ep.pattern.relation),
                params).row(0, named=True)
    flagged, total = row["flagged"], row["bad_outputs"]
    row["flag_coverage"] = flagged / total if total else None
    return row

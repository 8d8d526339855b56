"""Detection gap: when could we have known? Onset, first signals, and simple alert rules
backtested over the whole history.

>>> gap = case.detection_gap("over_refusal")
>>> gap.meta["best_rule"]["rule"], gap.meta["best_rule"]["false_alarms"]
('all: rate >= 3.58% over 1h with >= 100 events (12x baseline)', 0)
>>> gap.save_query("queries/").suffix
'.sql'

Two families of rules, each on the pattern's rate per bucket, over all traffic and in the
feature where the pattern rose:

- **threshold**: fire when the rate over the last ``w`` buckets reaches ``m`` times the
  rate before the onset, with at least ``v`` events in those buckets;
- **CUSUM**: Page's Bernoulli CUSUM for a ``r``-fold rise over the rate before the onset,
  firing when the statistic exceeds ``h`` (``S_t = W_t - min(0, min_{s<=t} W_s)`` with
  ``W`` the cumulative log-likelihood ratio, so it runs as a window function in SQL too).

The events are aggregated to buckets once in DuckDB
(:func:`forensics.playbook.episode.episode`); the whole grid of rules is then evaluated
with NumPy over those buckets. Alarms are counted as episodes (consecutive firing
buckets = one alarm); an alarm that starts before the onset is a false alarm. The
earliest rule with at most ``max_false_alarms`` is proposed, and
:meth:`DetectionResult.save_query` writes it as a saved query monitoring can adopt.
Thresholds are set from the same history the false alarms are counted on (in-sample),
which the result says.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forensics.cause.changes import interval
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.playbook.episode import EpisodeResult, episode, first_signals, mark_times
from forensics.playbook.milestones import recorded

WINDOWS = (1, 3, 6)                              # buckets summed by a threshold rule
MIN_EVENTS = (10, 30, 100, 300)                  # events needed in the window to fire
MULTIPLES = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)  # threshold = multiple x baseline rate
RATIOS = (1.5, 2.0, 3.0, 5.0)                    # CUSUM: the rise it looks for
LIMITS = (2.0, 3.0, 5.0, 8.0, 12.0)              # CUSUM: decision limit h
MIN_HEADROOM = 1.2                               # proposed rule: limit >= 1.2 x past peak
KIND_ORDER = {"threshold": 0, "cusum": 1}


@dataclass(frozen=True)
class Scope:
    """One monitored series: a feature (or all traffic) on the episode's bucket grid."""

    name: str
    feature: str | None
    n: np.ndarray
    bad: np.ndarray


# ---------------------------------------------------------------------------------------
# the backtest: vectorised over the rule grid


def _episodes(fire: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For boolean alarms ``fire[..., t]``: alarms starting before bucket ``k`` (false),
    the first bucket >= k that fires (-1 when none), and the first false alarm (-1)."""
    start = fire & ~np.concatenate([np.zeros_like(fire[..., :1]), fire[..., :-1]], axis=-1)
    return start[..., :k].sum(axis=-1), _first(fire[..., k:], k), _first(start[..., :k], 0)


def _first(flags: np.ndarray, offset: int) -> np.ndarray:
    """Index (plus ``offset``) of the first true value along the last axis, or -1."""
    if flags.shape[-1] == 0:
        return np.full(flags.shape[:-1], -1)
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1) + offset, -1)


def baseline(scope: Scope, k: int) -> tuple[float, float]:
    """(rate before bucket ``k``, the floor used when it is 0: half an event)."""
    n0 = float(scope.n[:k].sum())
    rate = float(scope.bad[:k].sum()) / n0 if n0 else 0.0
    return rate, (rate if rate > 0 else 0.5 / max(n0, 1.0))


def threshold_rules(scope: Scope, k: int, windows: tuple[int, ...] = WINDOWS,
                    min_events: tuple[int, ...] = MIN_EVENTS,
                    multiples: tuple[float, ...] = MULTIPLES) -> list[dict[str, Any]]:
    """Every (window, minimum events, multiple) rule on one scope, backtested at once.

    >>> s = Scope("all", None, np.full(60, 100.0), np.r_[np.ones(50), np.full(10, 9.0)])
    >>> quiet = [r for r in threshold_rules(s, 50) if r["false_alarms"] == 0]
    >>> min(r["fired"] for r in quiet if r["fired"] >= 0)
    50
    """
    base, ref = baseline(scope, k)
    vol = np.asarray(min_events, dtype=float)[:, None, None]
    th = (ref * np.asarray(multiples, dtype=float))[None, :, None]
    cx = np.concatenate([[0.0], np.cumsum(scope.bad)])
    cn = np.concatenate([[0.0], np.cumsum(scope.n)])
    rows = []
    for w in windows:
        lo = np.maximum(np.arange(scope.n.size) + 1 - w, 0)
        xs, ns = cx[1:] - cx[lo], cn[1:] - cn[lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(ns > 0, xs / np.maximum(ns, 1), 0.0)
        rate[: w - 1] = 0.0                         # not a full window yet
        fire = (ns[None, None, :] >= vol) & (rate[None, None, :] >= th) & (xs > 0)
        false, first, first_false = _episodes(fire, k)
        quiet = np.where((ns[None, :k] >= vol[:, 0, :]), rate[None, :k], 0.0)
        peak = quiet.max(axis=-1) if k else np.zeros(len(min_events))
        for i, v in enumerate(min_events):
            for j, m in enumerate(multiples):
                threshold = float(th[0, j, 0])
                rows.append({"kind": "threshold", "window": w, "min_events": int(v),
                             "multiple": m, "threshold": threshold, "ratio": None,
                             "limit": None, "baseline_rate": base,
                             "false_alarms": int(false[i, j]), "fired": int(first[i, j]),
                             "first_false": int(first_false[i, j]),
                             "headroom": threshold / peak[i] if peak[i] > 0 else math.inf})
    return rows


def cusum_rules(scope: Scope, k: int, ratios: tuple[float, ...] = RATIOS,
                limits: tuple[float, ...] = LIMITS) -> list[dict[str, Any]]:
    """Every (ratio, limit) Bernoulli CUSUM on one scope, backtested at once.

    >>> s = Scope("all", None, np.full(60, 100.0), np.r_[np.ones(50), np.full(10, 4.0)])
    >>> r = [r for r in cusum_rules(s, 50) if r["ratio"] == 3.0 and r["limit"] == 5.0][0]
    >>> r["fired"], r["false_alarms"]          # three buckets of evidence past the limit
    (52, 0)
    """
    base, p0 = baseline(scope, k)
    r = np.minimum(np.asarray(ratios, dtype=float), 0.999 / p0)[:, None]
    x, n = scope.bad[None, :], scope.n[None, :]
    w = x * np.log(r) + (n - x) * np.log((1 - r * p0) / (1 - p0))
    cum = np.cumsum(w, axis=1)
    s = cum - np.minimum(np.minimum.accumulate(cum, axis=1), 0.0)
    h = np.asarray(limits, dtype=float)[None, :, None]
    fire = s[:, None, :] > h
    false, first, first_false = _episodes(fire, k)
    peak = s[:, :k].max(axis=-1) if k else np.zeros(len(ratios))
    rows = []
    for i, ratio in enumerate(ratios):
        for j, limit in enumerate(limits):
            rows.append({"kind": "cusum", "window": None, "min_events": None,
                         "multiple": None, "threshold": None, "ratio": ratio,
                         "limit": limit, "baseline_rate": base, "p0": p0,
                         "false_alarms": int(false[i, j]), "fired": int(first[i, j]),
                         "first_false": int(first_false[i, j]),
                         "headroom": limit / peak[i] if peak[i] > 0 else math.inf})
    return rows


def backtest(scopes: list[Scope], k: int, buckets: list[dt.datetime], step: dt.timedelta,
             onset: dt.datetime | None, end: dt.datetime | None,
             grid: dict[str, tuple[Any, ...]] | None = None) -> pl.DataFrame:
    """All rules on all scopes, one row each: when it would have fired (at the end of the
    bucket that completed the evidence), its delay after the onset, its false alarms
    before the onset and per week of that history, and whether it fired before ``end``."""
    grid = grid or {}
    rows = []
    for scope in scopes:
        found = threshold_rules(scope, k, grid.get("windows", WINDOWS),
                                grid.get("min_events", MIN_EVENTS),
                                grid.get("multiples", MULTIPLES)) + \
            cusum_rules(scope, k, grid.get("ratios", RATIOS), grid.get("limits", LIMITS))
        for r in found:
            r["scope"], r["feature"] = scope.name, scope.feature
        rows += found
    weeks = k * step.total_seconds() / (7 * 86400)
    for r in rows:
        fired = buckets[r["fired"]] + step if r["fired"] >= 0 else None
        r["fired_at"] = fired
        r["delay_hours"] = round((fired - onset).total_seconds() / 3600, 2) \
            if fired is not None and onset is not None else None
        r["first_false_alarm"] = buckets[r["first_false"]] + step if r["first_false"] >= 0 \
            else None
        r["false_alarms_per_week"] = round(r["false_alarms"] / weeks, 3) if weeks else None
        r["caught"] = fired is not None and (end is None or fired <= end)
        r["rule"] = describe(r, step)
    df = pl.DataFrame([{c: r.get(c) for c in RULE_SCHEMA} for r in rows], schema=RULE_SCHEMA)
    df = df.sort(["fired_at", "false_alarms", "kind", "headroom"],
                 descending=[False, False, False, True], nulls_last=True)
    # no alarm-worthy bucket at all before the onset: unlimited headroom, shown as empty
    return df.with_columns(pl.when(pl.col("headroom").is_infinite()).then(None)
                           .otherwise(pl.col("headroom")).alias("headroom"))


RULE_SCHEMA: dict[str, Any] = {
    "rule": pl.String, "scope": pl.String, "feature": pl.String, "kind": pl.String,
    "window": pl.Int64, "min_events": pl.Int64, "multiple": pl.Float64,
    "threshold": pl.Float64, "ratio": pl.Float64, "limit": pl.Float64, "p0": pl.Float64,
    "baseline_rate": pl.Float64, "fired_at": pl.Datetime("us"), "delay_hours": pl.Float64,
    "caught": pl.Boolean, "false_alarms": pl.Int64, "false_alarms_per_week": pl.Float64,
    "first_false_alarm": pl.Datetime("us"), "headroom": pl.Float64}


def describe(r: dict[str, Any], step: dt.timedelta) -> str:
    """A rule in words: ``support_chat: rate >= 3.1% over 3h with >= 30 events``."""
    hours = step.total_seconds() / 3600
    if r["kind"] == "threshold":
        span = _span(r["window"] * hours)
        basis = f"{r['multiple']:g}x baseline" if r["baseline_rate"] else \
            "no pattern events before: any occurrence"
        return (f"{r['scope']}: rate >= {_pct(r['threshold'])} over {span} with >= "
                f"{r['min_events']} events ({basis})")
    return (f"{r['scope']}: CUSUM for a {r['ratio']:g}x rise over {_pct(r['p0'])}, "
            f"limit {r['limit']:g}")


def _span(hours: float) -> str:
    return f"{hours:g}h" if hours >= 1 else f"{round(hours * 60)}m"


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def choose(rules: pl.DataFrame, max_false_alarms: int = 0,
           min_headroom: float = MIN_HEADROOM) -> dict[str, Any] | None:
    """The earliest rule that caught the incident with at most ``max_false_alarms`` and
    at least ``min_headroom`` (its limit over the highest value it saw before the onset:
    a rule that only just stayed quiet would cry wolf next week); ties: fewer false
    alarms, a threshold before a CUSUM, the most headroom. When none qualifies, the caught
    rule with the fewest false alarms."""
    caught = rules.filter(pl.col("caught"))
    if caught.height == 0:
        return None
    ok = caught.filter((pl.col("false_alarms") <= max_false_alarms)
                       & (pl.col("headroom").is_null() | (pl.col("headroom") >= min_headroom)))
    pool = ok if ok.height else caught.filter(
        pl.col("false_alarms") == caught["false_alarms"].min())
    pool = pool.with_columns(pl.col("kind").replace_strict(KIND_ORDER).alias("_k"))
    pool = pool.with_columns(pl.col("headroom").fill_null(math.inf))
    best = pool.sort(["fired_at", "false_alarms", "_k", "headroom"],
                     descending=[False, False, False, True]).row(0, named=True)
    best["headroom"] = None if math.isinf(best["headroom"]) else best["headroom"]
    best.pop("_k")
    best["within_allowance"] = bool(ok.height)
    return best


# ---------------------------------------------------------------------------------------
# the public function


class DetectionResult(Result):
    """Backtested alert rules (``.df``, earliest first), the onset and first signals and
    the proposed rule in ``meta``; ``.series`` is the monitored series of the best rule's
    scope, ``.alert_sql`` the proposed rule as a saved query."""

    kind = "detection_gap"

    def __init__(self, df: pl.DataFrame, *, series: pl.DataFrame, alert_sql: str | None,
                 alert_name: str | None, episode: EpisodeResult | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.series = series
        self.episode = episode
        self.alert_sql = alert_sql
        self.alert_name = alert_name

    def save_query(self, path: str | Path) -> Path:
        """Write the proposed rule as a saved query: ``path`` is a folder (the file is
        named after the rule) or a ``.sql`` file. Run it with ``case.query(name)`` once the
        folder is on ``$FORENSICS_QUERIES``, or in the ``duckdb`` CLI."""
        if not self.alert_sql or not self.alert_name:
            raise UsageError("no rule to save: none caught the incident",
                             hint="widen the grid or allow false alarms (max_false_alarms)")
        target = Path(path)
        if target.suffix != ".sql":
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{self.alert_name}.sql"
        target.write_text(self.alert_sql, encoding="utf-8")
        self.meta["alert_query_path"] = str(target)
        return target

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["alert_sql"] = self.alert_sql
        return out

    def plot(self, ax: Any = None) -> Any:
        """The monitored rate, the proposed rule's alarms, the onset and first signals."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 3.8))
        s = self.series
        if s.height:
            ax.plot(s["bucket"].to_list(), s["rate"].to_list(), lw=0.9, color="#2c3e50",
                    label="pattern rate")
        best = self.meta.get("best_rule") or {}
        if best.get("kind") == "threshold":
            ax.axhline(best["threshold"], color="#8e44ad", ls=":", lw=1,
                       label=f"threshold {_pct(best['threshold'])}")
        if best.get("fired_at"):
            ax.axvline(best["fired_at"], color="#8e44ad", lw=1.6, label="proposed alert")
        return mark_times(ax, self.meta, [
            ("onset", "#c0392b", "-"), ("first_bad_output", "#e67e22", ":"),
            ("first_flag", "#16a085", ":"), ("first_complaint", "#7f8c8d", ":"),
            ("detected", "#2980b9", "-")], self.title)


def detection_gap(case: CaseHandle, pattern: Pattern = None, *, bucket: str = "1h",
                  onset: Any = None, suspect: bool | str = True, max_false_alarms: int = 0,
                  min_headroom: float = MIN_HEADROOM, save: str | Path | None = None,
                  grid: dict[str, tuple[Any, ...]] | None = None,
                  ep: EpisodeResult | None = None) -> DetectionResult:
    """When the pattern started, when it could have been known, and the alert rule that
    would have caught it soonest without crying wolf in the weeks before.

    Reports the onset (change point; or ``onset=``), the first pattern event, the first
    guardrail flag, the first negative feedback and complaint on a pattern event, the
    recorded ``detected`` milestone (time to detect), and a backtest of every threshold and
    CUSUM rule of ``grid`` (keys ``windows``, ``min_events``, ``multiples``, ``ratios``,
    ``limits``) over all traffic and the onset feature. ``meta['best_rule']`` is the
    earliest rule that fired before the incident ended with at most ``max_false_alarms``
    false alarms and ``min_headroom``; ``.alert_sql`` is it as a saved query, written to
    ``save`` (a folder or a ``.sql`` file) when given.

    >>> gap = case.detection_gap("over_refusal", max_false_alarms=1)
    >>> gap.meta["best_rule"]["caught"]
    True
    """
    ep = ep or episode(case, pattern,
                       bucket=bucket, onset=onset, suspect=suspect)
    buckets = ep.df["bucket"].to_list()
    k = ep.index(ep.onset)
    k = len(buckets) if k is None else k
    scopes = [Scope(ep.feature, ep.feature, *_arrays(ep.scope_series(ep.feature)))] \
        if ep.feature else []
    scopes.append(Scope("all", None, *_arrays(ep.scope_series(None))))
    marks = recorded(case)
    end = ep.meta["end"]
    rules = backtest(scopes, k, buckets, ep.step, ep.onset, end, grid)
    best = choose(rules, max_false_alarms, min_headroom)
    signals = first_signals(case, ep)
    meta: dict[str, Any] = {
        "pattern": ep.pattern.desc, "bucket": ep.meta["bucket"], "scope": ep.meta["scope"],
        "onset": ep.onset, "onset_source": ep.meta["onset_source"],
        "change_point": ep.meta["change_point"], "suspect": ep.meta["suspect"],
        "baseline_rate": ep.meta.get("baseline_rate"),
        "history_weeks": ep.meta.get("history_weeks"), **signals,
        "detected": marks.get("detected"), "incident_end": end,
        "incident_end_source": ep.meta["end_source"],
        "rules_tested": rules.height, "max_false_alarms": max_false_alarms,
        "min_headroom": min_headroom,
        "best_rule": best,
        "method": "alarms backtested on the bucketed pattern rate; thresholds and CUSUM "
                  "reference rates set from the history before the onset (in-sample)"}
    meta.update(_gaps(meta))
    if ep.onset is None:
        meta["warning"] = "no onset: every alarm is counted as a false alarm"
    name = sql = None
    if best is not None:
        name = _slug(f"alert_{ep.pattern.desc}_{best['scope']}_{best['kind']}")
        sql = alert_sql(best, ep, meta)
    result = DetectionResult(rules, series=_monitored(ep, best), alert_sql=sql,
                             alert_name=name, episode=ep, sql=ep.sql, params=ep.params,
                             title=f"detection gap: {ep.pattern.desc}", meta=meta)
    if save is not None:
        result.save_query(save)
    return result


def _arrays(s: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return s["n"].to_numpy().astype(float), s["bad"].to_numpy().astype(float)


def _hours_between(a: dt.datetime | None, b: dt.datetime | None) -> float | None:
    return round((b - a).total_seconds() / 3600, 2) if a is not None and b is not None \
        else None


def _gaps(meta: dict[str, Any]) -> dict[str, Any]:
    """Hours from the onset to each signal, and how much sooner the proposed rule would
    have known than the recorded detection."""
    onset, best = meta["onset"], meta["best_rule"] or {}
    out = {f"{k}_after_onset_hours": _hours_between(onset, meta.get(k)) for k in
           ("first_bad_output", "first_flag", "first_negative_feedback", "first_complaint")}
    out["time_to_detect_hours"] = _hours_between(onset, meta.get("detected"))
    out["alert_delay_hours"] = _hours_between(onset, best.get("fired_at"))
    out["alert_lead_hours"] = _hours_between(best.get("fired_at"), meta.get("detected"))
    return out


def _monitored(ep: EpisodeResult, best: dict[str, Any] | None) -> pl.DataFrame:
    s = ep.scope_series(best["feature"] if best else ep.feature)
    w = int(best["window"]) if best and best["window"] else 1
    return s.with_columns(
        (pl.col("bad").rolling_sum(w, min_samples=1) /
         pl.col("n").rolling_sum(w, min_samples=1)).fill_nan(None).alias("rate"))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80]


# ---------------------------------------------------------------------------------------
# the rule as a saved query


def _literal(value: Any) -> tuple[str, str]:
    """(DuckDB type, SQL literal) of a parameter value for a saved-query header."""
    if isinstance(value, bool):
        return "BOOLEAN", "true" if value else "false"
    if isinstance(value, int):
        return "BIGINT", str(value)
    if isinstance(value, float):
        return "DOUBLE", repr(value)
    if isinstance(value, dt.datetime):
        return "TIMESTAMP", f"'{value.isoformat(sep=' ')}'"
    return "VARCHAR", "'" + str(value).replace("'", "''") + "'"


ALERT_BODY = """WITH per_bucket AS (
    SELECT time_bucket(getvariable('bucket'), ts) AS bucket, count(*) AS n,
           count(*) FILTER (WHERE coalesce({cond}, false)) AS bad
    FROM {relation}
    WHERE ts IS NOT NULL
      AND (getvariable('feature') IS NULL OR coalesce(feature, '(none)') = getvariable('feature'))
      AND (getvariable('since') IS NULL OR ts >= getvariable('since'))
    GROUP BY ALL
), grid AS (
    SELECT unnest(range(min(bucket), max(bucket) + getvariable('bucket'),
                        getvariable('bucket'))) AS bucket FROM per_bucket
), series AS (
    SELECT g.bucket, coalesce(p.n, 0) AS n, coalesce(p.bad, 0) AS bad
    FROM grid g LEFT JOIN per_bucket p USING (bucket)
){tail}"""

THRESHOLD_TAIL = """, windowed AS (
    SELECT bucket, n, bad,
           CAST(sum(n) OVER w AS BIGINT) AS window_events,
           CAST(sum(bad) OVER w AS BIGINT) AS window_bad,
           count(*) OVER w AS window_buckets
    FROM series
    WINDOW w AS (ORDER BY bucket ROWS BETWEEN getvariable('window_buckets') - 1 PRECEDING
                                      AND CURRENT ROW)
)
SELECT bucket + getvariable('bucket') AS checked_at, n, bad, window_events, window_bad,
       round(window_bad / nullif(window_events, 0), 6) AS window_rate,
       window_buckets = getvariable('window_buckets') AND window_bad > 0
           AND window_events >= getvariable('min_events')
           AND window_bad / window_events >= getvariable('threshold') AS fire
FROM windowed
ORDER BY bucket"""

CUSUM_TAIL = """, llr AS (
    SELECT bucket, n, bad,
           bad * ln(getvariable('ratio'))
           + (n - bad) * ln((1 - getvariable('ratio') * getvariable('p0'))
                            / (1 - getvariable('p0'))) AS w
    FROM series
), walk AS (SELECT *, sum(w) OVER (ORDER BY bucket) AS cum FROM llr)
SELECT bucket + getvariable('bucket') AS checked_at, n, bad,
       round(cum - least(0, min(cum) OVER (ORDER BY bucket)), 4) AS cusum,
       cum - least(0, min(cum) OVER (ORDER BY bucket)) > getvariable('decision_limit') AS fire
FROM walk
ORDER BY bucket"""


def alert_sql(rule: dict[str, Any], ep: EpisodeResult, meta: dict[str, Any]) -> str:
    """The rule as a saved query (``queries/*.sql`` header format): one row per bucket
    with the monitored figures and ``fire``; every number is a header parameter."""
    cond = ep.pattern.cond
    params: list[tuple[str, str, str, str]] = []
    for key, value in ep.pattern.params.items():
        cond = re.sub(rf"\${key}\b", f"getvariable('{key}')", cond)
        params.append((key, *_literal(value), "defines the pattern"))
    params.append(("bucket", "INTERVAL", f"INTERVAL '{interval(ep.meta['bucket'])}'",
                   "bucket width"))
    params.append(("feature", "VARCHAR", _literal(rule["feature"])[1]
                   if rule["feature"] else "NULL", "one feature, or all traffic when NULL"))
    params.append(("since", "TIMESTAMP", "NULL", "only buckets from this time"))
    if rule["kind"] == "threshold":
        params += [("threshold", "DOUBLE", repr(round(rule["threshold"], 8)),
                    f"{rule['multiple']:g}x the rate before the onset "
                    f"({_pct(rule['baseline_rate'])})"),
                   ("min_events", "BIGINT", str(rule["min_events"]),
                    "events needed in the window"),
                   ("window_buckets", "BIGINT", str(rule["window"]), "buckets per window")]
        tail = THRESHOLD_TAIL
    else:
        params += [("p0", "DOUBLE", repr(round(rule["p0"], 10)),
                    "in-control rate (before the onset)"),
                   ("ratio", "DOUBLE", repr(rule["ratio"]), "the rise the chart looks for"),
                   ("decision_limit", "DOUBLE", repr(rule["limit"]), "decision limit h")]
        tail = CUSUM_TAIL
    onset = meta["onset"]
    head = [f"-- title: Alert: {ep.pattern.desc} ({rule['kind']}, {rule['scope']})",
            f"-- description: {rule['rule']}. Proposed by forensics detection-gap: on the "
            "case it was backtested on,",
            f"-- description: it would have fired at {rule['fired_at']:%Y-%m-%d %H:%M} UTC, "
            f"{rule['delay_hours']:g} h after the onset ({onset:%Y-%m-%d %H:%M}),"
            if onset and rule["fired_at"] else "-- description: it did not fire,",
            f"-- description: with {rule['false_alarms']} false alarm(s) in the "
            f"{meta.get('history_weeks') or 0:g} weeks before. One row per bucket; alert "
            "when fire is true."]
    head += [f"-- param: {name} {typ} = {default}   -- {note}"
             for name, typ, default, note in params]
    body = ALERT_BODY.format(cond=cond, tail=tail, relation=ep.pattern.relation)
    return "\n".join(head) + "\n" + body + ";\n"

"""Which change caused it: cohort comparisons, ranked suspects, retrieval diffs.

>>> case.compare(by="prompt_version", a="v12", b="v13").df          # doctest: +SKIP
>>> case.suspects(label="over_refusal").df                          # doctest: +SKIP
>>> case.retrieval_diff(before="kb-2026-02-20", after="kb-2026-03-12").meta  # doctest: +SKIP

Heavy work runs in DuckDB (events are aggregated to buckets and strata in SQL); only the
small aggregated arrays reach numpy. Statistics come from :mod:`forensics.core.stats`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any

import numpy as np
import polars as pl

from forensics.cause.changes import changes as list_changes
from forensics.cause.changes import interval
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import DEFAULT_COMPARE, SEGMENTS, column, metric
from forensics.core.result import Result
from forensics.core.selection import pattern_condition

BEFORE_AFTER_WEIGHT = 0.6
VERSION_COLS = ("model", "response_model", "prompt_version", "retrieval_version", "release")
ALPHA = 0.05


# =======================================================================================
# patterns

# =======================================================================================
# compare

class CompareResult(Result):
    kind = "compare"

    def plot(self, ax: Any = None) -> Any:
        """Differences with their intervals, overall metrics (rates in points)."""
        import matplotlib.pyplot as plt

        rows = self.df.filter((pl.col("segment") == "all") & (pl.col("kind") == "rate"))
        if ax is None:
            _, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(rows.height, 1)))
        y = list(range(rows.height))
        diff = (rows["diff"] * 100).to_list()
        low = (rows["ci_low"] * 100).to_list()
        high = (rows["ci_high"] * 100).to_list()
        ax.errorbar(diff, y, xerr=[[d - lo for d, lo in zip(diff, low, strict=True)],
                                   [h - d for d, h in zip(diff, high, strict=True)]],
                    fmt="o", color="#2c3e50")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, rows["metric"].to_list())
        ax.set_xlabel("difference b - a (percentage points)")
        ax.set_title(self.title)
        return ax

    def _warn(self, warnings: list[str]) -> CompareResult:
        self.meta["warnings"] = [*warnings, *self.meta.get("warnings", [])]
        return self


def _cohorts(by: str | None, a: Any, b: Any, at: Any, window: str | None
             ) -> tuple[str, str, dict[str, Any], str, str]:
    """SQL conditions for cohorts a and b, their parameters, labels and the design."""
    params: dict[str, Any] = {}
    if at is not None:
        params["at"] = str(at)
        cond_a, cond_b = "ts < CAST($at AS TIMESTAMP)", "ts >= CAST($at AS TIMESTAMP)"
        if window:
            params["win"] = interval(window)
            cond_a += " AND ts >= CAST($at AS TIMESTAMP) - CAST($win AS INTERVAL)"
            cond_b += " AND ts < CAST($at AS TIMESTAMP) + CAST($win AS INTERVAL)"
        if by is not None and a is not None:      # before/after on one version
            params["a_val"] = str(a)
            same = f" AND CAST({column(by)} AS VARCHAR) = $a_val"
            cond_a, cond_b = cond_a + same, cond_b + same
        return cond_a, cond_b, params, f"before {at}", f"after {at}"
    if by is not None:
        if a is None or b is None:
            raise UsageError("compare by a column needs both values",
                             hint="e.g. compare(by='prompt_version', a='v12', b='v13')")
        col = f"CAST({column(by)} AS VARCHAR)"
        params.update(a_val=str(a), b_val=str(b))
        return f"{col} = $a_val", f"{col} = $b_val", params, f"{by}={a}", f"{by}={b}"
    conds = []
    for side, spec in (("a", a), ("b", b)):
        if isinstance(spec, dict):
            parts = []
            for i, (key, value) in enumerate(spec.items()):
                params[f"{side}{i}"] = str(value)
                parts.append(f"CAST({column(key)} AS VARCHAR) = ${side}{i}")
            conds.append(" AND ".join(parts) or "true")
        elif isinstance(spec, str) and spec.strip():
            conds.append(f"({spec})")
        else:
            raise UsageError(f"cohort {side} is not defined",
                             hint="give by= with a/b values, at= for before/after, or a/b "
                                  "as {column: value} dicts or SQL conditions")
    label_a = a if isinstance(a, str) else ", ".join(f"{k}={v}" for k, v in a.items())
    label_b = b if isinstance(b, str) else ", ".join(f"{k}={v}" for k, v in b.items())
    return conds[0], conds[1], params, label_a, label_b


def compare(case: CaseHandle, a: Any = None, b: Any = None, *, by: str | None = None,
            at: Any = None, window: str | None = None, where: str | None = None,
            metrics: list[str] | tuple[str, ...] | None = None,
            segments: list[str] | tuple[str, ...] | None = SEGMENTS,
            segment_metrics: list[str] | tuple[str, ...] = ("bad_rate",),
            concurrent: bool | None = None, level: float = 0.95, min_n: int = stats.SMALL_N,
            reps: int = 500, sample: int = 20_000, seed: int = 0) -> CompareResult:
    """Two cohorts, metric by metric, with intervals and corrected p-values.

    Cohorts: ``by="prompt_version", a="v12", b="v13"`` (versions), ``at=TS`` (before /
    after, optionally ``window="24h"`` each side, and ``by``/``a`` to stay on one version),
    or ``a``/``b`` as ``{column: value}`` dicts (values bound as parameters) or SQL
    conditions over ``event_facts``. ``where`` restricts both.

    Rates: Wilson intervals per cohort, Newcombe interval of the difference, p-value from
    the Cochran-Mantel-Haenszel test over hours when the comparison is concurrent (else a
    two-proportion test), plus the hour-stratified Mantel-Haenszel difference. Means and
    quantiles: exact values in SQL, bootstrap interval (on a random sample of at most
    ``sample`` events per cohort, rescaled to the cohort size). Benjamini-Hochberg
    q-values across every metric and segment row. ``concurrent`` (default: on unless the
    cohorts are split in time with ``at``, or either is a SQL condition, which may name
    time itself) keeps only the hours in which both cohorts had traffic, so a time trend
    cannot pass for a version effect. Rows on small samples are flagged, never dropped.

    >>> case.compare(by="prompt_version", a="v12", b="v13").to_markdown()  # doctest: +SKIP
    """
    cond_a, cond_b, params, label_a, label_b = _cohorts(by, a, b, at, window)
    if concurrent is None:
        concurrent = at is None and (by is not None
                                     or (isinstance(a, dict) and isinstance(b, dict)))
    names = list(metrics or DEFAULT_COMPARE)
    ms = [metric(n, i) for i, n in enumerate(names)]
    seg_ms = [metric(n, 100 + i) for i, n in enumerate(segment_metrics)]
    for m in (*ms, *seg_ms):
        params.update(m.params)
    segs = list(segments or [])
    seg_exprs = [f"CAST({column(s)} AS VARCHAR) AS s{i}" for i, s in enumerate(segs)]
    rates = [m for m in ms if m.kind == "rate"]
    values = [m for m in ms if m.kind == "value"]
    cols = ([f"coalesce({m.sql}, false) AS r{i}" for i, m in enumerate(rates)]
            + [f"coalesce({m.sql}, false) AS g{i}" for i, m in enumerate(seg_ms)]
            + [f"CAST({m.sql} AS DOUBLE) AS v{i}" for i, m in enumerate(values)] + seg_exprs)
    filt = f"(({cond_a}) OR ({cond_b})){f' AND ({where})' if where else ''}"
    cohort = f"CASE WHEN {cond_a} THEN 'a' ELSE 'b' END"
    if concurrent:
        # a narrow first pass finds the hours in which both cohorts had traffic
        hours_sql = (f"SELECT time_bucket(INTERVAL 1 HOUR, ts) AS hour FROM event_facts "
                     f"WHERE {filt} GROUP BY hour HAVING count(DISTINCT {cohort}) = 2")
        shared = sorted(r[0] for r in case.con.execute(hours_sql, params or None).fetchall())
        params["shared_hours"] = shared
        params["shared_lo"] = shared[0] if shared else dt.datetime(1970, 1, 1)
        params["shared_hi"] = shared[-1] + dt.timedelta(hours=1) if shared \
            else dt.datetime(1970, 1, 1)
        filt += (" AND ts >= $shared_lo AND ts < $shared_hi"
                 " AND list_contains($shared_hours, time_bucket(INTERVAL 1 HOUR, ts))")
    base_sql = f"""
SELECT {cohort} AS cohort,
       time_bucket(INTERVAL 1 HOUR, ts) AS hour{''.join(', ' + c for c in cols)}
FROM event_facts
WHERE {filt}"""
    table = "_forensics_compare"
    case.con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {base_sql}", params or None)
    try:
        hours = frame(case.con, "SELECT cohort, hour, count(*) AS n"
                      + "".join(f", count(*) FILTER (WHERE r{i}) AS x{i}"
                                for i in range(len(rates)))
                      + f" FROM {table} GROUP BY ALL")
        warnings = []
        if hours.height == 0:
            if concurrent:
                warnings.append("the cohorts never served in the same hour: compared over "
                                "all their traffic, so time effects are not controlled")
                case.con.execute(f"DROP TABLE {table}")
                return compare(case, a, b, by=by, at=at, window=window, where=where,
                               metrics=metrics, segments=segments,
                               segment_metrics=segment_metrics, concurrent=False, level=level,
                               min_n=min_n, reps=reps, sample=sample, seed=seed) \
                    ._warn(warnings)
            raise UsageError("no events in either cohort",
                             hint="check the cohort definitions (values are compared as text)")
        rows = _rate_rows(hours, rates, concurrent, level, min_n)
        rows += _value_rows(case, table, values, level, min_n, reps, sample, seed)
        rows += _segment_rows(case, table, segs, seg_ms, level, min_n)
    finally:
        case.con.execute(f"DROP TABLE IF EXISTS {table}")
    df = _finish_compare(rows)
    n_a = int(hours.filter(pl.col("cohort") == "a")["n"].sum())
    n_b = int(hours.filter(pl.col("cohort") == "b")["n"].sum())
    if min(n_a, n_b) < min_n:
        warnings.append(f"small sample: {n_a} events in a, {n_b} in b")
    moved = _moved_most(df)
    meta = {"a": label_a, "b": label_b, "events_a": n_a, "events_b": n_b,
            "concurrent": bool(concurrent), "hours_compared": hours["hour"].n_unique(),
            "tests": int(df["p_value"].is_not_null().sum()), "correction": "Benjamini-Hochberg",
            "level": level, "moved_most": moved, "warnings": warnings,
            "method": ("rates: Wilson / Newcombe intervals, CMH p-value over hours"
                       if concurrent else "rates: Wilson / Newcombe intervals, "
                                          "two-proportion test")
                      + f"; means and quantiles: bootstrap ({reps} draws)"}
    sql = base_sql
    return CompareResult(df, sql=sql, params=params, title=f"compare {label_a} vs {label_b}",
                         meta=meta)


def _row(segment: str, value: str | None, name: str, kind: str, **kw: Any) -> dict[str, Any]:
    return {"segment": segment, "value": value, "metric": name, "kind": kind, **kw}


def _rate_rows(hours: pl.DataFrame, rates: list[Any], concurrent: bool, level: float,
               min_n: int) -> list[dict[str, Any]]:
    wide = hours.pivot(on="cohort", index="hour", values=[c for c in hours.columns
                                                           if c not in ("cohort", "hour")])
    out = []
    for i, m in enumerate(rates):
        def col(name: str, side: str, w: pl.DataFrame = wide) -> np.ndarray:
            key = f"{name}_{side}"
            return w[key].fill_null(0).to_numpy() if key in w.columns else np.zeros(w.height)
        xa, na, xb, nb = col(f"x{i}", "a"), col("n", "a"), col(f"x{i}", "b"), col("n", "b")
        out.append(_prop_row("all", None, m.name, xa.sum(), na.sum(), xb.sum(), nb.sum(),
                             level, min_n, strata=(xa, na, xb, nb) if concurrent else None))
    return out


def _prop_row(segment: str, value: str | None, name: str, xa: float, na: float, xb: float,
              nb: float, level: float, min_n: int,
              strata: tuple[np.ndarray, ...] | None = None) -> dict[str, Any]:
    wa, wb = stats.wilson(xa, na, level), stats.wilson(xb, nb, level)
    d = stats.newcombe(xa, na, xb, nb, level)
    mh_diff = None
    if strata is not None:
        mh = stats.mantel_haenszel(strata[2], strata[3], strata[0], strata[1], level)
        p, mh_diff = mh.p_value, mh.risk_difference
    else:
        p = stats.two_proportion_test(xa, na, xb, nb)
    return _row(segment, value, name, "rate", a_value=wa.estimate, a_count=int(xa),
                a_n=int(na), a_low=wa.low, a_high=wa.high, b_value=wb.estimate,
                b_count=int(xb), b_n=int(nb), b_low=wb.low, b_high=wb.high,
                diff=d.estimate, ci_low=d.low, ci_high=d.high, mh_diff=mh_diff, p_value=p,
                small_sample=stats.small_sample(xa, na, min_n) or
                stats.small_sample(xb, nb, min_n))


def _value_rows(case: CaseHandle, table: str, values: list[Any], level: float, min_n: int,
                reps: int, sample: int, seed: int) -> list[dict[str, Any]]:
    if not values:
        return []
    aggs = ", ".join(f"{_agg(m, f'v{i}')} AS p{i}, count(v{i}) AS n{i}"
                     for i, m in enumerate(values))
    exact = {r["cohort"]: r for r in
             frame(case.con, f"SELECT cohort, {aggs} FROM {table} GROUP BY cohort").to_dicts()}
    vcols = ", ".join(f"v{i}" for i in range(len(values)))
    draws = {side: frame(case.con, f"SELECT {vcols} FROM (SELECT {vcols} FROM {table} WHERE "
                         f"cohort = $side) USING SAMPLE reservoir({int(sample)} ROWS) "
                         f"REPEATABLE ({int(seed)})", {"side": side})
             for side in ("a", "b")}
    out = []
    for i, m in enumerate(values):
        ea, eb = exact.get("a", {}), exact.get("b", {})
        na, nb = int(ea.get(f"n{i}") or 0), int(eb.get(f"n{i}") or 0)
        pa, pb = ea.get(f"p{i}"), eb.get(f"p{i}")
        xa = draws["a"][f"v{i}"].drop_nulls().to_numpy()
        xb = draws["b"][f"v{i}"].drop_nulls().to_numpy()
        if na and nb and pa is not None and pb is not None:
            d = stats.bootstrap_diff(xa, xb, m.stat, reps=reps, seed=seed + i, level=level,
                                     population=(na, nb), point=(float(pa), float(pb)))
            ca = stats.bootstrap_ci(xa, m.stat, reps=reps, seed=seed + i, level=level,
                                    population=na)
            cb = stats.bootstrap_ci(xb, m.stat, reps=reps, seed=seed + 50 + i, level=level,
                                    population=nb)
            shift_a, shift_b = float(pa) - ca.estimate, float(pb) - cb.estimate
            out.append(_row("all", None, m.name, "value", a_value=float(pa), a_count=None,
                            a_n=na, a_low=ca.low + shift_a, a_high=ca.high + shift_a,
                            b_value=float(pb), b_count=None, b_n=nb, b_low=cb.low + shift_b,
                            b_high=cb.high + shift_b, diff=d.estimate, ci_low=d.low,
                            ci_high=d.high, mh_diff=None, p_value=d.p_value,
                            small_sample=min(na, nb) < min_n))
        else:
            out.append(_row("all", None, m.name, "value", a_value=pa, a_count=None, a_n=na,
                            b_value=pb, b_count=None, b_n=nb, p_value=None, small_sample=True))
    return out


def _agg(m: Any, col: str) -> str:
    return f"avg({col})" if m.stat == "mean" else f"quantile_cont({col}, {float(m.stat)})"


def _segment_rows(case: CaseHandle, table: str, segs: list[str], seg_ms: list[Any], level: float,
                  min_n: int) -> list[dict[str, Any]]:
    if not segs or not seg_ms:
        return []
    sets = ", ".join(f"(cohort, s{i})" for i in range(len(segs)))
    which = "CASE " + " ".join(f"WHEN GROUPING(s{i}) = 0 THEN {i}" for i in range(len(segs))) \
        + " END"
    value = "CASE " + " ".join(f"WHEN GROUPING(s{i}) = 0 THEN s{i}" for i in range(len(segs))) \
        + " END"
    counts = "".join(f", count(*) FILTER (WHERE g{j}) AS x{j}" for j in range(len(seg_ms)))
    df = frame(case.con, f"SELECT cohort, {which} AS seg, coalesce({value}, '(none)') AS value, "
                         f"count(*) AS n{counts} FROM {table} GROUP BY GROUPING SETS ({sets})")
    if df.height == 0:
        return []
    wide = df.pivot(on="cohort", index=["seg", "value"],
                    values=[c for c in df.columns if c not in ("cohort", "seg", "value")])
    out = []
    for r in wide.iter_rows(named=True):
        for j, m in enumerate(seg_ms):
            xa, na = r.get(f"x{j}_a") or 0, r.get("n_a") or 0
            xb, nb = r.get(f"x{j}_b") or 0, r.get("n_b") or 0
            if na == 0 or nb == 0:
                continue
            out.append(_prop_row(segs[r["seg"]], r["value"], m.name, xa, na, xb, nb, level,
                                 min_n))
    return out


def _finish_compare(rows: list[dict[str, Any]]) -> pl.DataFrame:
    cols = ["segment", "value", "metric", "kind", "a_value", "a_count", "a_n", "a_low",
            "a_high", "b_value", "b_count", "b_n", "b_low", "b_high", "diff", "ci_low",
            "ci_high", "mh_diff", "p_value", "small_sample"]
    schema: dict[str, Any] = {c: pl.Float64 for c in cols}
    schema.update({"segment": pl.String, "value": pl.String, "metric": pl.String,
                   "kind": pl.String, "a_count": pl.Int64, "a_n": pl.Int64, "b_count": pl.Int64,
                   "b_n": pl.Int64, "small_sample": pl.Boolean})
    df = pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], schema=schema)
    q = stats.benjamini_hochberg(df["p_value"].fill_null(np.nan).to_numpy())
    return df.with_columns(pl.Series("q_value", q).fill_nan(None)) \
        .with_columns(pl.col("p_value").fill_nan(None))


def _moved_most(df: pl.DataFrame) -> dict[str, Any]:
    """Per segment column, the value whose metric moved most among significant rows."""
    seg = df.filter((pl.col("segment") != "all") & (pl.col("q_value") < ALPHA))
    out = {}
    for (name,), part in seg.group_by("segment", maintain_order=True):
        top = part.sort(pl.col("diff").abs(), descending=True).row(0, named=True)
        out[str(name)] = {"value": top["value"], "metric": top["metric"], "diff": top["diff"],
                          "ci_low": top["ci_low"], "ci_high": top["ci_high"],
                          "q_value": top["q_value"]}
    return out


# =======================================================================================
# suspects

class SuspectsResult(Result):
    """Ranked candidate root causes; ``.series`` is the bucketed pattern rate."""

    kind = "suspects"

    def __init__(self, df: pl.DataFrame, series: pl.DataFrame | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.series = series if series is not None else pl.DataFrame()

    def plot(self, ax: Any = None, top: int = 3) -> Any:
        """The pattern rate over time, the detected onset and the top suspects."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 3.8))
        s = self.series
        if s.height:
            ax.plot(s["bucket"].to_list(), (s["bad"] / s["n"]).to_list(), lw=1.0,
                    color="#2c3e50", label="pattern rate")
        onset = self.meta.get("onset")
        if onset:
            ax.axvline(_ts(onset), color="#c0392b", lw=1.5, label="onset")
        ymax = ax.get_ylim()[1]
        for row in self.df.head(top).iter_rows(named=True):
            ax.axvline(row["ts"], color="#e67e22", ls="--", lw=0.9)
            ax.annotate(f"#{row['rank']} {row['feature']} {row['to_version']}",
                        (row["ts"], ymax), rotation=90, fontsize=7, va="top", ha="right")
        ax.set_title(self.title)
        ax.legend(fontsize="small", loc="upper left")
        return ax


def _ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.fromisoformat(str(value).replace("Z", "")).replace(tzinfo=None)


def cube_sql(cond: str, where: str | None = None) -> str:
    """Requests aggregated to (feature, bucket, version profile): the only scan suspects
    makes of the events; everything after runs on this small table. The unit is the
    trace (a request with its spans), so spans of one request are not counted as
    independent evidence; a request is bad when any of its spans shows the pattern."""
    return f"""
SELECT feature, bucket, {', '.join(VERSION_COLS)}, count(*) AS n,
       count(*) FILTER (WHERE bad) AS bad
FROM (
SELECT feature, time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket,
       {', '.join(VERSION_COLS)},
       hash(coalesce(trace_id, event_id)) AS unit, bool_or(coalesce({cond}, false)) AS bad
FROM event_facts
WHERE ts IS NOT NULL AND feature IS NOT NULL{f' AND ({where})' if where else ''}
GROUP BY ALL)
GROUP BY ALL"""


def suspects(case: CaseHandle, pattern: str | None = None, *, label: str | None = None,
             cluster: str | None = None, where: str | None = None, bucket: str = "1h",
             window: str = "48h", lookback: str = "72h", lookahead: str = "12h",
             method: str = "binseg", segments: list[str] | tuple[str, ...] = SEGMENTS,
             level: float = 0.95, min_n: int = stats.SMALL_N) -> SuspectsResult:
    """Ranked candidate root causes of a bad pattern.

    1. The pattern (``label``, ``cluster``, SQL ``where`` or ``pattern``, default any bad
       signal) is counted per bucket, feature and version profile in one SQL scan.
    2. Onset: change-point detection on the bucketed rate (:func:`stats.onset`).
    3. Candidates: declared and inferred changes from ``lookback`` before to ``lookahead``
       after the onset (all changes when no onset is found).
    4. Evidence per candidate, within ``window`` either side of it, on its feature:
       contrast of the pattern rate on the new version vs the old one, stratified by hour
       and by the other version columns (concurrent traffic, so another change or a time
       trend cannot pass for this one; Mantel-Haenszel difference with CI, CMH p-value,
       Benjamini-Hochberg across candidates). When the versions never ran in the same
       hours (an instant switch) the contrast is before/after, still stratified by the
       other versions. Also: alignment with the onset, dose-response (correlation of the
       rate with the rollout share per bucket), segment specificity.
    5. Score = 0.5 contrast + 0.25 alignment + 0.15 dose-response + 0.1 specificity; the
       contrast term grows with the z of an increase (halved unless significant after
       correction, discounted when not concurrent) and the dose-response term is weighed
       by it, so a change whose traffic shows no difference ranks below one that does.
       Two changes that reached the same traffic at the same time cannot be told apart:
       both say so (``confounded_with``).

    >>> case.suspects(label="over_refusal").df.head(3)   # doctest: +SKIP
    """
    cond, params, desc = pattern_condition(case, pattern, label=label, cluster=cluster,
                                           where=where)
    params = {**params, "bucket": interval(bucket)}
    sql = cube_sql(cond)
    cube = frame(case.con, sql, params)
    if cube.height == 0:
        raise UsageError("no events in the case", hint="load evidence first: case.load(...)")
    step = _hours(bucket)
    series = _series(cube, step)
    found, onset_feature, onset_ts = _onset(cube, series, step, method)
    chg = list_changes(case, rollout=False).df
    declared = int((chg["source"] != "inferred").sum()) if chg.height else 0
    warning = None if found is not None else "no onset detected: every change was considered"
    if onset_ts is not None and chg.height:
        lo = onset_ts - dt.timedelta(hours=_hours(lookback))
        hi = onset_ts + dt.timedelta(hours=_hours(lookahead))
        near = chg.filter((pl.col("ts") >= lo) & (pl.col("ts") <= hi))
        if near.height:
            chg = near
        else:  # a change point with no change near it is more likely noise than a cause
            warning = (f"no change between {lookback} before and {lookahead} after the onset "
                       f"({onset_ts}): every change was considered")
    ctx = {"cube": cube, "step": step, "window": _hours(window), "level": level,
           "min_n": min_n, "onset": onset_ts, "changes": chg,
           "feature_onsets": _feature_onsets(cube, step, method, onset_ts)}
    rows = [_evidence(c, ctx) for c in chg.iter_rows(named=True)]
    rows = _confounding(rows)
    q = stats.benjamini_hochberg([r["p_value"] if r["p_value"] is not None else math.nan
                                  for r in rows])
    for r, qv in zip(rows, q, strict=True):
        r["q_value"] = None if math.isnan(qv) else float(qv)
    for r in rows:
        if _significant(r):
            r.update(_specificity(case, r, cond, params, ctx, list(segments), level))
        r["score"] = _score(r)
        r["verdict"], r["explanation"] = _explain(r, ctx)
    df = _suspect_frame(rows)
    meta = {"pattern": desc, "onset": onset_ts, "onset_feature": onset_feature,
            "onset_rate_before": found.before if found else None,
            "onset_rate_after": found.after if found else None,
            "onset_method": method, "bucket": bucket, "window": window,
            "candidates": df.height, "declared_changes": declared,
            "change_log": "declared and inferred" if declared else "inferred only",
            "confounded": [r["change_id"] for r in rows if r["confounded_with"]],
            "scoring": "0.5 contrast (z of the increase; halved unless significant, x0.6 "
                       "when not concurrent) + 0.25 alignment + 0.15 dose-response x contrast "
                       "+ 0.1 segment specificity"}
    if warning:
        meta["warning"] = warning
    return SuspectsResult(df, series=series, sql=sql, params=params,
                          title=f"suspects: {desc}", meta=meta)


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses extra ones)."""
    names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
    return {k: v for k, v in params.items() if k in names}


def _hours(text: str) -> float:
    value, unit = interval(text).split()
    per = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1.0, "day": 24.0, "week": 168.0}
    return int(value) * per[unit]


def _series(cube: pl.DataFrame, step: float, feature: str | None = None) -> pl.DataFrame:
    part = cube if feature is None else cube.filter(pl.col("feature") == feature)
    s = part.group_by("bucket").agg(pl.col("n").sum(), pl.col("bad").sum()).sort("bucket")
    if s.height == 0:
        return s
    full = pl.DataFrame({"bucket": pl.datetime_range(
        s["bucket"].min(), s["bucket"].max(),  # type: ignore[arg-type]
        interval=f"{int(step * 3600)}s", eager=True)}).with_columns(
        pl.col("bucket").cast(s["bucket"].dtype))
    return full.join(s, on="bucket", how="left").fill_null(0)


def _onset(cube: pl.DataFrame, series: pl.DataFrame, step: float,
           method: str) -> tuple[stats.Onset | None, str | None, dt.datetime | None]:
    """The strongest rise: over all traffic, or in one feature when the pattern is local
    (a rise in one feature can drown in the others)."""
    best: tuple[stats.Onset | None, str | None, dt.datetime | None] = (None, None, None)
    parts: list[tuple[str | None, pl.DataFrame]] = [(None, series)]
    parts += [(f, _series(cube, step, f)) for f in sorted(cube["feature"].unique().to_list())]
    for feature, s in parts:
        o = stats.onset(s["bad"].to_numpy(), s["n"].to_numpy(), method=method)
        if o is None:
            continue
        if best[0] is None or _llr(o) > _llr(best[0]):
            best = (o, feature, s["bucket"][o.index])
    return best


def _llr(o: stats.Onset) -> float:
    return o.llr if not math.isnan(o.llr) else o.after - o.before


def _feature_onsets(cube: pl.DataFrame, step: float, method: str,
                    near: dt.datetime | None) -> dict[str, dt.datetime]:
    out = {}
    for f in cube["feature"].unique().to_list():
        s = _series(cube, step, f)
        o = stats.onset(s["bad"].to_numpy(), s["n"].to_numpy(), method=method)
        if o is None:
            continue
        ts = s["bucket"][o.index]
        if near is None or abs((ts - near).total_seconds()) <= 24 * 3600:
            out[f] = ts
    return out


def _evidence(c: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """Contrast, alignment and dose-response of one candidate change."""
    cube: pl.DataFrame = ctx["cube"]
    ts = c["ts"]
    half = dt.timedelta(hours=ctx["window"])
    rows = cube.filter((pl.col("bucket") >= ts - half) & (pl.col("bucket") < ts + half))
    if c["feature"] is not None:
        rows = rows.filter(pl.col("feature") == c["feature"])
    col = c["column"]
    if col in VERSION_COLS:
        exposed = pl.col(col).cast(pl.String) == str(c["to_version"])
    else:
        exposed = pl.col("bucket") >= ts - dt.timedelta(hours=ctx["step"])
    rows = rows.with_columns(exposed.fill_null(False).alias("_x"),
                             pl.col("feature").alias("_f"))
    out = {**{k: c[k] for k in ("change_id", "kind", "feature", "column", "from_version",
                                "to_version", "ts", "source")}, "confounded_with": [],
           "segment": None, "specificity": 0.0, "moves_with": []}
    others = [v for v in VERSION_COLS if v != col]
    conc = _contrast(rows, others, ["bucket", "_f"], ctx, out)
    moves = out["moves_with"]
    ba = _contrast(rows, others, ["_f"], ctx, out)
    out["moves_with"] = sorted(set(moves) | set(out["moves_with"]))
    options = []
    if conc is not None and min(conc.n1, conc.n0) >= ctx["min_n"]:
        options.append(("concurrent", conc, 1.0))
    if ba is not None and ba.strata:
        # before/after, still stratified by the other versions (a co-landing change cannot
        # pass for this one) but time is not controlled: its evidence is discounted
        options.append(("before/after", ba, BEFORE_AFTER_WEIGHT))
    if options:
        method, mh, _ = max(options, key=lambda o: o[2] * _strength(o[1].z))
        out["method"] = method
        if len(options) == 2:         # the better of two tests: Bonferroni for the choice
            mh = dataclasses.replace(mh, p_value=min(1.0, 2 * mh.p_value))
            out["method"] += " (of 2 tests)"
    else:
        out["method"], mh = "none", None
    _put_contrast(out, mh)
    out["dose_response"] = _dose(rows)
    out["alignment_hours"], out["alignment"] = _alignment(c, ctx)
    return out


def _contrast(rows: pl.DataFrame, others: list[str], keys: list[str], ctx: dict[str, Any],
              out: dict[str, Any]) -> stats.MHResult | None:
    """Mantel-Haenszel contrast exposed vs not, strata = ``keys`` + the other version
    columns, except those that move in lockstep with the exposure inside the strata
    used (they are recorded in ``out['moves_with']``: the same change, or a confounder)."""
    if rows.height == 0:
        return None
    by_key = rows.group_by([*keys, "_x"]).agg(pl.col("n").sum())
    both = by_key.group_by(keys).agg(pl.col("_x").n_unique().alias("k")) \
        .filter(pl.col("k") == 2).drop("k")
    if both.height == 0:
        return None
    inside = rows.join(both, on=keys, how="inner")
    strata = list(keys)
    moves = []
    for other in others:
        if _lockstep(inside, other):
            moves.append(other)
        else:
            strata.append(other)
    out["moves_with"] = moves
    g = inside.with_columns([pl.col(s).cast(pl.String).fill_null("") for s in strata
                             if s not in keys]) \
        .group_by([*strata, "_x"]).agg(pl.col("n").sum(), pl.col("bad").sum())
    g1 = g.filter(pl.col("_x")).drop("_x")
    g0 = g.filter(~pl.col("_x")).drop("_x")
    j = g1.join(g0, on=strata, how="inner", suffix="_0")
    if j.height == 0:
        return None
    return stats.mantel_haenszel(j["bad"].to_numpy(), j["n"].to_numpy(),
                                 j["bad_0"].to_numpy(), j["n_0"].to_numpy(), ctx["level"])


def _lockstep(rows: pl.DataFrame, other: str, tolerance: float = 0.02) -> bool:
    """Whether ``other`` takes one value on exposed rows and another on the rest, for all
    but ``tolerance`` of the traffic (then it cannot separate the change's effect)."""
    per = rows.group_by(["_x", other]).agg(pl.col("n").sum())
    exp = per.filter(pl.col("_x")).sort("n", descending=True)
    une = per.filter(~pl.col("_x")).sort("n", descending=True)
    if exp.height == 0 or une.height == 0:
        return False
    v1, v0 = exp[other][0], une[other][0]
    if v1 == v0:
        return False
    total = float(per["n"].sum())
    off = float(exp.filter(pl.col(other).ne_missing(v1))["n"].sum()) + \
        float(une.filter(pl.col(other).eq_missing(v1))["n"].sum())
    return off / max(total, 1) < tolerance


def _put_contrast(out: dict[str, Any], mh: stats.MHResult | None) -> None:
    if mh is None or mh.strata == 0:
        out.update(effect=None, ci_low=None, ci_high=None, z=None, p_value=None,
                   rate_new=None, n_new=0, bad_new=0, rate_old=None, n_old=0, bad_old=0)
        return
    out.update(effect=mh.risk_difference, ci_low=mh.low, ci_high=mh.high, z=mh.z,
               p_value=mh.p_value, rate_new=mh.rate1, n_new=mh.n1, bad_new=mh.x1,
               rate_old=mh.rate0, n_old=mh.n0, bad_old=mh.x0)


def _dose(rows: pl.DataFrame) -> float | None:
    per = rows.group_by("bucket").agg(
        pl.col("n").sum(), pl.col("bad").sum(),
        pl.col("n").filter(pl.col("_x")).sum().alias("n1"))
    if per.height < 3:
        return None
    share = (per["n1"] / per["n"]).to_numpy()
    rate = (per["bad"] / per["n"]).to_numpy()
    r = stats.weighted_corr(share, rate, per["n"].to_numpy())
    return None if math.isnan(r) else round(r, 4)


def _alignment(c: dict[str, Any], ctx: dict[str, Any]) -> tuple[float | None, float]:
    ref = ctx["feature_onsets"].get(c["feature"]) or ctx["onset"]
    if ref is None:
        return None, 0.0
    hours = (c["ts"] - ref).total_seconds() / 3600
    score = math.exp(-max(0.0, abs(hours) - ctx["step"]) / 12)
    if hours > 2 * ctx["step"]:          # after the rise began: cannot have started it
        score *= 0.5
    if c["feature"] not in ctx["feature_onsets"]:
        score *= 0.5                      # its own feature shows no rise
    return round(hours, 2), round(score, 4)


def _confounding(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark pairs of candidates on the same feature whose versions move in lockstep."""
    for r in rows:
        for other in rows:
            if other is r or other["feature"] != r["feature"]:
                continue
            if other["column"] in r["moves_with"] and \
                    abs((other["ts"] - r["ts"]).total_seconds()) <= 24 * 3600:
                r["confounded_with"].append(other["change_id"])
    return rows


def _significant(r: dict[str, Any]) -> bool:
    return (r["effect"] is not None and r["effect"] > 0 and r["q_value"] is not None
            and r["q_value"] < ALPHA)


def _specificity(case: CaseHandle, r: dict[str, Any], cond: str, params: dict[str, Any],
                 ctx: dict[str, Any], segs: list[str], level: float) -> dict[str, Any]:
    """Is the excess concentrated in one segment? The largest (share of excess bad events
    minus share of new-version traffic) over segment values, with that value's effect."""
    if not segs:
        return {}
    half = dt.timedelta(hours=ctx["window"])
    col = r["column"]
    exposed = (f"CAST({col} AS VARCHAR) = $s_to" if col in VERSION_COLS
               else "ts >= CAST($s_ts AS TIMESTAMP)")
    exprs = [f"CAST({column(s)} AS VARCHAR) AS s{i}" for i, s in enumerate(segs)]
    sets = ", ".join(f"(x, s{i})" for i in range(len(segs)))
    which = "CASE " + " ".join(f"WHEN GROUPING(s{i}) = 0 THEN {i}" for i in range(len(segs))) \
        + " END"
    value = "CASE " + " ".join(f"WHEN GROUPING(s{i}) = 0 THEN s{i}"
                               for i in range(len(segs))) + " END"
    sql = f"""
WITH w AS (
    SELECT coalesce({exposed}, false) AS x, coalesce({cond}, false) AS bad, {', '.join(exprs)}
    FROM event_facts
    WHERE ts >= CAST($s_lo AS TIMESTAMP) AND ts < CAST($s_hi AS TIMESTAMP)
      AND ($s_feature IS NULL OR feature = $s_feature))
SELECT x, {which} AS seg, coalesce({value}, '(none)') AS value, count(*) AS n,
       count(*) FILTER (WHERE bad) AS bad
FROM w GROUP BY GROUPING SETS ({sets})"""
    p = {k: v for k, v in params.items() if k != "bucket"}
    p.update(s_lo=str(r["ts"] - half), s_hi=str(r["ts"] + half), s_feature=r["feature"])
    if col in VERSION_COLS:
        p["s_to"] = str(r["to_version"])
    else:
        p["s_ts"] = str(r["ts"])
    df = frame(case.con, sql, p)
    if df.height == 0:
        return {}
    new = df.filter(pl.col("x")).rename({"n": "n1", "bad": "x1"}).drop("x")
    old = df.filter(~pl.col("x")).rename({"n": "n0", "bad": "x0"}).drop("x")
    j = new.join(old, on=["seg", "value"], how="left").fill_null(0)
    overall0 = float(r["rate_old"] or 0)
    j = j.with_columns(rate0=pl.when(pl.col("n0") >= 30).then(pl.col("x0") / pl.col("n0"))
                       .otherwise(overall0))
    j = j.with_columns(excess=pl.col("x1") - pl.col("n1") * pl.col("rate0"))
    tot = j.group_by("seg").agg(pl.col("excess").sum().alias("tot"),
                                pl.col("n1").sum().alias("n1_tot"))
    j = j.join(tot, on="seg").filter(pl.col("tot") > 0).with_columns(
        conc=pl.col("excess") / pl.col("tot") - pl.col("n1") / pl.col("n1_tot"))
    if j.height == 0:
        return {}
    best = j.sort("conc", descending=True).row(0, named=True)
    d = stats.newcombe(best["x0"], best["n0"], best["x1"], best["n1"], level)
    if best["conc"] < 0.2 or not d.low > (r["effect"] or 0.0):
        return {}                         # the excess is not concentrated in one segment
    return {"segment": f"{segs[best['seg']]}={best['value']}",
            "specificity": round(max(0.0, min(1.0, best["conc"])), 4),
            "segment_effect": d.estimate, "segment_ci_low": d.low, "segment_ci_high": d.high}


def _strength(z: float | None) -> float:
    """Evidence of an increase from a z statistic, in [0, 1)."""
    return 1 - math.exp(-max(z or 0.0, 0.0) / 5)


def _score(r: dict[str, Any]) -> float:
    # an increase counts in full when significant after correction, half when not;
    # a null contrast (z near 0) earns nothing, whatever the timing
    contrast = _strength(r["z"]) * (1.0 if _significant(r) else 0.5)
    if not r["method"].startswith("concurrent"):
        contrast *= BEFORE_AFTER_WEIGHT   # time effects not controlled
    rising = r["effect"] is not None and r["effect"] > 0
    dose = max(r["dose_response"] or 0.0, 0.0) * _strength(r["z"]) if rising else 0.0
    return round(0.5 * contrast + 0.25 * r["alignment"] + 0.15 * dose
                 + 0.1 * r["specificity"], 4)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _explain(r: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, str]:
    what = (f"{r['feature'] or 'all features'} {r['column'] or r['kind']} "
            f"{r['from_version'] or '?'} -> {r['to_version']} ({r['source']}, "
            f"{r['ts']:%Y-%m-%d %H:%M})")
    where = ("in the same hours" if r["method"].startswith("concurrent")
             else "before vs after")
    if r["effect"] is None:
        return "no evidence", (f"{what}: no traffic on both versions to compare, so the "
                               "data cannot speak for or against it.")
    rates = (f"pattern rate {_pct(r['rate_new'])} on the new version ({r['bad_new']}/"
             f"{r['n_new']}) vs {_pct(r['rate_old'])} on the old ({r['bad_old']}/"
             f"{r['n_old']}) {where}, difference {100 * r['effect']:+.2f} points "
             f"[{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}], q={r['q_value']:.2g}")
    if r["confounded_with"]:
        return "confounded", (f"{what}: {rates}; it reached the same traffic at the same time "
                              f"as {', '.join(r['confounded_with'])}, so the data cannot tell "
                              "these changes apart.")
    if _significant(r):
        extra = []
        if r["alignment_hours"] is not None:
            extra.append(f"it landed {abs(r['alignment_hours']):.1f} h "
                         f"{'before' if r['alignment_hours'] <= 0 else 'after'} the onset")
        if r["dose_response"] is not None and r["dose_response"] > 0.3:
            extra.append(f"the rate follows its rollout share (r={r['dose_response']:.2f})")
        if r["segment"]:
            extra.append(f"concentrated in {r['segment']}")
        tail = ("; " + "; ".join(extra)) if extra else ""
        return "likely cause", f"{what}: {rates}{tail}."
    small = " (small sample)" if min(r["n_new"], r["n_old"]) < ctx["min_n"] else ""
    return "no contrast", (f"{what}: {rates}{small}: traffic on the new version is no worse, "
                           "so this change is unlikely to be the cause.")


def _suspect_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    cols: dict[str, Any] = {"rank": pl.Int64, "change_id": pl.String, "kind": pl.String,
            "feature": pl.String, "column": pl.String, "from_version": pl.String,
            "to_version": pl.String, "ts": pl.Datetime("us"), "source": pl.String,
            "score": pl.Float64, "effect": pl.Float64, "ci_low": pl.Float64,
            "ci_high": pl.Float64, "p_value": pl.Float64, "q_value": pl.Float64,
            "rate_new": pl.Float64, "bad_new": pl.Int64, "n_new": pl.Int64,
            "rate_old": pl.Float64, "bad_old": pl.Int64, "n_old": pl.Int64,
            "method": pl.String, "alignment_hours": pl.Float64, "dose_response": pl.Float64,
            "segment": pl.String, "specificity": pl.Float64, "confounded_with": pl.String,
            "verdict": pl.String, "explanation": pl.String}
    ordered = sorted(rows, key=lambda r: (-r["score"], -(r["z"] or -1e9), -r["alignment"]))
    data = []
    for i, r in enumerate(ordered, 1):
        d = {k: r.get(k) for k in cols}
        d["rank"] = i
        d["confounded_with"] = ", ".join(r["confounded_with"]) or None
        data.append(d)
    return pl.DataFrame(data, schema=cols)


# =======================================================================================
# retrieval diff

class RetrievalDiffResult(Result):
    """Documents that entered / left the top-k, with how often they came with bad
    outputs; ``.queries`` has overlap@k and rank-biased overlap per matched query."""

    kind = "retrieval_diff"

    def __init__(self, df: pl.DataFrame, queries: pl.DataFrame | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.queries = queries if queries is not None else pl.DataFrame()

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        if self.queries.height:
            ax.hist(self.queries["rbo"].to_list(), bins=20, range=(0, 1), color="#2c3e50")
        ax.set_xlabel(f"rank-biased overlap (p={self.meta.get('rbo_p')}) per query")
        ax.set_ylabel("queries")
        ax.set_title(self.title)
        return ax


def retrieval_diff(case: CaseHandle, before: str | None = None, after: str | None = None, *,
                   at: Any = None, feature: str | None = None, k: int = 5, p: float = 0.9,
                   pattern: str | None = None, level: float = 0.95) -> RetrievalDiffResult:
    """Retrieval before vs after an index change, on the same queries (same normalised
    ``input_text``: lower case, collapsed white space).

    Cohorts: ``before``/``after`` are ``retrieval_version`` values, or ``at=TS`` splits
    in time. Per query: the top-``k`` documents (ordered by mean rank over its events),
    overlap@k and rank-biased overlap (extrapolated, Webber et al. 2010, persistence
    ``p``). Per document: entered, left or kept, with the events that retrieved it before
    and after and the pattern rate (default any bad signal) of the after-events that
    retrieved it, with a Wilson interval. ``meta['new_docs']`` contrasts after-events
    whose top-k held a new document with those that did not (Newcombe interval).

    Without cohorts, the newest index version (by first use) is compared with the one
    in use before it.

    >>> case.retrieval_diff(before="kb-2026-02-20", after="kb-2026-03-12").meta  # doctest: +SKIP
    """
    cond, params, desc = pattern_condition(case, pattern)
    params = {**params, "k": int(k), "p": float(p), "feature": feature}
    if at is not None:
        side = "CASE WHEN e.ts < CAST($at AS TIMESTAMP) THEN 'before' ELSE 'after' END"
        params["at"] = str(at)
        keep = "true"
    elif before is not None and after is not None:
        side = "CASE WHEN e.retrieval_version = $before THEN 'before' ELSE 'after' END"
        params.update(before=str(before), after=str(after))
        keep = "e.retrieval_version IN ($before, $after)"
    else:
        before, after = _latest_index_change(case, feature, before, after)
        side = "CASE WHEN e.retrieval_version = $before THEN 'before' ELSE 'after' END"
        params.update(before=before, after=after)
        keep = "e.retrieval_version IN ($before, $after)"
    base = f"""
WITH ev AS (
    SELECT e.event_id, {side} AS side,
           lower(regexp_replace(trim(e.input_text), '\\s+', ' ', 'g')) AS q,
           coalesce({cond}, false) AS bad
    FROM event_facts e
    WHERE {keep} AND e.input_text IS NOT NULL
      AND ($feature IS NULL OR e.feature = $feature)
      AND e.event_id IN (SELECT event_id FROM retrievals)
), hits AS (
    SELECT ev.event_id, ev.side, ev.q, ev.bad, r.doc_id, r.rank
    FROM ev JOIN retrievals r USING (event_id) WHERE r.rank <= $k
)"""
    query_sql = base + """, per_doc AS (
    SELECT q, side, doc_id, avg(rank) AS mean_rank, count(*) AS hits FROM hits GROUP BY ALL
), lists AS (
    SELECT q, side, list(doc_id ORDER BY mean_rank, hits DESC, doc_id)[1:$k] AS docs
    FROM per_doc GROUP BY q, side
), pairs AS (
    SELECT b.q, b.docs AS before_docs, a.docs AS after_docs
    FROM lists b JOIN lists a ON a.q = b.q AND b.side = 'before' AND a.side = 'after'
)
SELECT q AS query, before_docs, after_docs,
       len(list_intersect(before_docs, after_docs)) / $k AS overlap_at_k,
       (1 - $p) * list_sum(list_transform(range(1, $k + 1), lambda d:
            pow($p, d - 1) * len(list_intersect(before_docs[1:d], after_docs[1:d])) / d))
       + pow($p, $k) * len(list_intersect(before_docs, after_docs)) / $k AS rbo
FROM pairs ORDER BY rbo, query"""
    doc_sql = base + """, docs AS (
    SELECT doc_id,
           count(DISTINCT event_id) FILTER (WHERE side = 'before') AS events_before,
           count(DISTINCT event_id) FILTER (WHERE side = 'after') AS events_after,
           count(DISTINCT event_id) FILTER (WHERE side = 'after' AND bad) AS bad_after
    FROM hits GROUP BY doc_id
)
SELECT doc_id, CASE WHEN events_before = 0 THEN 'entered' WHEN events_after = 0 THEN 'left'
                    ELSE 'kept' END AS status, events_before, events_after, bad_after
FROM docs ORDER BY bad_after DESC, events_after DESC, doc_id"""
    queries = frame(case.con, query_sql, _used(query_sql, params))
    docs = frame(case.con, doc_sql, _used(doc_sql, params))
    if docs.height:
        rate, low, high = stats.wilson_arrays(docs["bad_after"].to_numpy(),
                                              docs["events_after"].to_numpy(), level)
        docs = docs.with_columns(pl.Series("bad_rate_after", rate).fill_nan(None),
                                 pl.Series("low", low).fill_nan(None),
                                 pl.Series("high", high).fill_nan(None))
        # Strongest evidence first: the lower bound of the bad rate, not the raw count
        # (a document that came with few but mostly bad answers outranks a common one).
        docs = docs.sort(["low", "bad_after", "doc_id"], descending=[True, True, False],
                         nulls_last=True)
    contrast_sql = base + """, flagged AS (
    SELECT event_id, bool_or(doc_id IN (SELECT doc_id FROM hits GROUP BY doc_id
                                        HAVING count(*) FILTER (WHERE side = 'before') = 0))
               AS has_new, any_value(bad) AS bad
    FROM hits WHERE side = 'after' GROUP BY event_id
)
SELECT has_new, count(*) AS n, count(*) FILTER (WHERE bad) AS bad FROM flagged GROUP BY has_new"""
    cnt = {r["has_new"]: r for r in
           frame(case.con, contrast_sql, _used(contrast_sql, params)).to_dicts()}
    x1, n1 = (cnt.get(True) or {}).get("bad", 0), (cnt.get(True) or {}).get("n", 0)
    x0, n0 = (cnt.get(False) or {}).get("bad", 0), (cnt.get(False) or {}).get("n", 0)
    d = stats.newcombe(x0, n0, x1, n1, level)
    meta = {"before": before or f"before {at}", "after": after or f"after {at}", "k": k,
            "rbo_p": p, "pattern": desc, "matched_queries": queries.height,
            "mean_overlap_at_k": float(queries["overlap_at_k"].mean())  # type: ignore[arg-type]
            if queries.height else None,
            "mean_rbo": float(queries["rbo"].mean())  # type: ignore[arg-type]
            if queries.height else None,
            "docs_entered": int((docs["status"] == "entered").sum()) if docs.height else 0,
            "docs_left": int((docs["status"] == "left").sum()) if docs.height else 0,
            "new_docs": {"with_new_doc": {"bad": x1, "events": n1, "rate": x1 / n1 if n1
                                          else None},
                         "without": {"bad": x0, "events": n0,
                                     "rate": x0 / n0 if n0 else None},
                         "diff": d.estimate, "ci_low": d.low, "ci_high": d.high,
                         "p_value": stats.two_proportion_test(x0, n0, x1, n1),
                         "small_sample": stats.small_sample(x1, n1) or
                         stats.small_sample(x0, n0)}}
    return RetrievalDiffResult(docs, queries=queries, sql=doc_sql,
                               params=_used(doc_sql, params),
                               title=f"retrieval diff {meta['before']} -> {meta['after']}",
                               meta=meta)


def _latest_index_change(case: CaseHandle, feature: str | None, before: str | None,
                         after: str | None) -> tuple[str, str]:
    """The newest retrieval_version by first use, and the one first used before it (or
    whichever of the two the caller gave)."""
    versions = [r[0] for r in case.con.execute(
        "SELECT retrieval_version FROM events WHERE retrieval_version IS NOT NULL "
        "AND ($f IS NULL OR feature = $f) GROUP BY 1 ORDER BY min(ts) DESC, 1",
        {"f": feature}).fetchall()]
    if after is None:
        after = versions[0] if versions else None
    if before is None and after in versions:
        older = versions[versions.index(after) + 1:]
        before = older[0] if older else None
    if before is None or after is None:
        raise UsageError("no retrieval index change to compare: the events carry fewer than "
                         "two retrieval_version values",
                         hint="give before= and after= index versions, or at=TIME")
    return str(before), str(after)

"""Two cohorts compared: rates with intervals and p-values corrected for the number of
comparisons, for version against version or before against after, with segments.

>>> r = case.compare(by="prompt_version", a="v12", b="v13")
>>> r.df.filter(r.df["metric"] == "refusal_rate")["q_value"][0] < 0.001
True
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from forensics.cause.changes import interval
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import DEFAULT_COMPARE, SEGMENTS, column, metric
from forensics.core.result import Result
from forensics.core.selection import Pattern, select

ALPHA = 0.05



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
            at: Any = None, window: str | None = None, where: Pattern = None,
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

    >>> print(case.compare(by="prompt_version", a="v12", b="v13").to_markdown()[:30])
    **compare prompt_version=v12 v
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
    if where is not None:
        restrict = select(case, where)
        where = restrict.inline()
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

"""Which change caused it: candidate changes ranked by the evidence in the traffic
(contrast stratified by hour and by the other versions, alignment with the onset,
dose-response, segment specificity), with corrected p-values.

>>> case.suspects("over_refusal").df["change_id"][0]
'CHG-2041'

Heavy work runs in DuckDB (events are aggregated to buckets and strata in SQL by
:func:`cube_sql`); only the small aggregated arrays reach numpy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import polars as pl

from forensics.cause.changepoints import (
    feature_onsets,
    hours,
    rate_series,
    strongest_onset,
)
from forensics.cause.changes import changes as list_changes
from forensics.cause.changes import interval
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import SEGMENTS, column
from forensics.core.numbers import signed
from forensics.core.result import Result
from forensics.core.selection import Pattern, pattern_condition

BEFORE_AFTER_WEIGHT = 0.6
VERSION_COLS = ("model", "response_model", "prompt_version", "retrieval_version", "release")
ALPHA = 0.05



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


def suspects(case: CaseHandle, pattern: Pattern = None, *, bucket: str = "1h",
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

    >>> top = case.suspects("over_refusal").df.row(0, named=True)
    >>> top["change_id"], top["verdict"]
    ('CHG-2041', 'likely cause')
    """
    cond, params, desc = pattern_condition(case, pattern)
    params = {**params, "bucket": interval(bucket)}
    sql = cube_sql(cond)
    cube = frame(case.con, sql, params)
    if cube.height == 0:
        raise UsageError("no events in the case", hint="load evidence first: case.load(...)")
    step = hours(bucket)
    series = rate_series(cube, step)
    found, onset_feature, onset_ts = strongest_onset(cube, series, step, method)
    chg = list_changes(case, rollout=False).df
    declared = int((chg["source"] != "inferred").sum()) if chg.height else 0
    warning = None if found is not None else "no onset detected: every change was considered"
    if onset_ts is not None and chg.height:
        lo = onset_ts - dt.timedelta(hours=hours(lookback))
        hi = onset_ts + dt.timedelta(hours=hours(lookahead))
        near = chg.filter((pl.col("ts") >= lo) & (pl.col("ts") <= hi))
        if near.height:
            chg = near
        else:  # a change point with no change near it is more likely noise than a cause
            warning = (f"no change between {lookback} before and {lookahead} after the onset "
                       f"({onset_ts}): every change was considered")
    ctx = {"cube": cube, "step": step, "window": hours(window), "level": level,
           "min_n": min_n, "onset": onset_ts, "changes": chg,
           "feature_onsets": feature_onsets(cube, step, method, onset_ts)}
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
             f"{r['n_old']}) {where}, difference {signed(100 * r['effect'])} points "
             f"[{signed(100 * r['ci_low'])}, {signed(100 * r['ci_high'])}], "
             f"q={r['q_value']:.2g}")
    if r["confounded_with"]:
        return "confounded", (f"{what}: {rates}; it reached the same traffic at the same time "
                              f"as {', '.join(r['confounded_with'])}, so the data cannot tell "
                              "these changes apart.")
    if _significant(r):
        extra = []
        if r["alignment_hours"] is not None:
            extra.append(f"it landed {_lag(r['alignment_hours'])}")
        if r["dose_response"] is not None and r["dose_response"] > 0.3:
            extra.append(f"the rate follows its rollout share (r={r['dose_response']:.2f})")
        if r["segment"]:
            extra.append(f"concentrated in {r['segment']}")
        tail = ("; " + "; ".join(extra)) if extra else ""
        return "likely cause", f"{what}: {rates}{tail}."
    small = " (small sample)" if min(r["n_new"], r["n_old"]) < ctx["min_n"] else ""
    return "no contrast", f"{what}: {rates}{small}: {_no_contrast(r)}."


def _lag(hours: float) -> str:
    """When a change landed relative to the onset, in words a reader can say aloud.

    >>> for h in (0.0, -0.4, -3.25, 50.0):
    ...     print(_lag(h))
    in the same hour as the onset
    24 min before the onset
    3.2 h before the onset
    2.1 days after the onset
    """
    side = "before" if hours < 0 else "after"
    size = abs(hours)
    if size * 60 < 1:
        return "in the same hour as the onset"
    if size < 1:
        return f"{size * 60:.0f} min {side} the onset"
    return (f"{size:.1f} h {side} the onset" if size < 48
            else f"{size / 24:.1f} days {side} the onset")


def _no_contrast(r: dict[str, Any]) -> str:
    """What a difference that is not a likely cause says, as far as its interval goes."""
    if r["ci_high"] is not None and r["ci_high"] <= 0:
        return "traffic on the new version is no worse, so this change is unlikely to be the cause"
    if r["ci_low"] is not None and r["ci_low"] > 0:
        return ("the new version's rate is higher, but not significantly so after correcting "
                "for the number of changes tested")
    return ("the interval includes no difference, so the data neither implicate nor clear "
            "this change")


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

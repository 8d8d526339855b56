"""Change points on bucketed rates: where a bad pattern rose, over all traffic or in
one feature, found on the small per-bucket table the request cube gives.

The root-cause stage (suspects) and the playbook (episode, containment, timeline) share
these helpers.

>>> hours("90m"), hours("2h"), hours("1d")
(1.5, 2.0, 24.0)
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import polars as pl

from forensics.cause.changes import interval
from forensics.core import stats


def hours(text: str) -> float:
    value, unit = interval(text).split()
    per = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1.0, "day": 24.0, "week": 168.0}
    return int(value) * per[unit]


def rate_series(cube: pl.DataFrame, step: float, feature: str | None = None) -> pl.DataFrame:
    part = cube if feature is None else cube.filter(pl.col("feature") == feature)
    s = part.group_by("bucket").agg(pl.col("n").sum(), pl.col("bad").sum()).sort("bucket")
    if s.height == 0:
        return s
    full = pl.DataFrame({"bucket": pl.datetime_range(
        s["bucket"].min(), s["bucket"].max(),  # type: ignore[arg-type]
        interval=f"{int(step * 3600)}s", eager=True)}).with_columns(
        pl.col("bucket").cast(s["bucket"].dtype))
    return full.join(s, on="bucket", how="left").fill_null(0)


def strongest_onset(cube: pl.DataFrame, series: pl.DataFrame, step: float,
           method: str) -> tuple[stats.Onset | None, str | None, dt.datetime | None]:
    """The strongest rise: over all traffic, or in one feature when the pattern is local
    (a rise in one feature can drown in the others)."""
    best: tuple[stats.Onset | None, str | None, dt.datetime | None] = (None, None, None)
    parts: list[tuple[str | None, pl.DataFrame]] = [(None, series)]
    parts += [(f, rate_series(cube, step, f)) for f in sorted(cube["feature"].unique().to_list())]
    for feature, s in parts:
        o = stats.onset(s["bad"].to_numpy(), s["n"].to_numpy(), method=method)
        if o is None:
            continue
        if best[0] is None or _llr(o) > _llr(best[0]):
            best = (o, feature, s["bucket"][o.index])
    return best


def _llr(o: stats.Onset) -> float:
    return o.llr if not math.isnan(o.llr) else o.after - o.before


def feature_onsets(cube: pl.DataFrame, step: float, method: str,
                    near: dt.datetime | None) -> dict[str, dt.datetime]:
    out = {}
    for f in cube["feature"].unique().to_list():
        s = rate_series(cube, step, f)
        o = stats.onset(s["bad"].to_numpy(), s["n"].to_numpy(), method=method)
        if o is None:
            continue
        ts = s["bucket"][o.index]
        if near is None or abs((ts - near).total_seconds()) <= 24 * 3600:
            out[f] = ts
    return out


def used_params(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (DuckDB refuses extra ones)."""
    names = set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", sql))
    return {k: v for k, v in params.items() if k in names}

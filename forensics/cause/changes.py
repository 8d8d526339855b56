"""What changed: declared and inferred changes with their rollout, and metric timelines.

>>> case.changes().df["change_id"].to_list()[:2]
['CHG-1017', 'CHG-1033']
>>> ax = case.timeline("refusal_rate", by="prompt_version").plot()
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import polars as pl

from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import column, metric
from forensics.core.result import Result, jsonable
from forensics.core.selection import Pattern, select
from forensics.core.stats import wilson_arrays

_BUCKET = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|hour|hours|d|day|days|w|week)?\s*$", re.I)
_UNITS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour",
          "hour": "hour", "hours": "hour", "d": "day", "day": "day", "days": "day", "w": "week",
          "week": "week"}
ROLLOUT_HORIZON = "7 days"


def interval(bucket: str) -> str:
    """``"1h"`` -> ``"1 hour"``, ``"15m"`` -> ``"15 minute"``, ``"1d"`` -> ``"1 day"``."""
    m = _BUCKET.match(str(bucket))
    if not m:
        raise UsageError(f"cannot read bucket {bucket!r}", hint="use e.g. 15m, 1h, 6h, 1d")
    return f"{int(m.group(1))} {_UNITS[(m.group(2) or 'h').lower()]}"


def changes_sql() -> str:
    return resources.files("forensics.cause").joinpath("changes.sql").read_text(encoding="utf-8")


def rollout_sql() -> str:
    """Share of each change's feature traffic served by its new version, per bucket."""
    body = changes_sql().rstrip().removesuffix("ORDER BY ts, feature, change_id")
    return f"""
WITH ch AS ({body}),
cube AS (
    SELECT feature, time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket, model,
           response_model, prompt_version, retrieval_version, release, count(*) AS n
    FROM events WHERE feature IS NOT NULL AND ts IS NOT NULL
      AND ($feature IS NULL OR feature = $feature)
    GROUP BY ALL
), tot AS (SELECT feature, bucket, sum(n) AS n FROM cube GROUP BY ALL),
obs AS (UNPIVOT cube ON model, response_model, prompt_version, retrieval_version, release
        INTO NAME col VALUE version),
vb AS (SELECT feature, col, version, bucket, sum(n) AS n FROM obs GROUP BY ALL)
SELECT ch.change_id, t.bucket, CAST(t.n AS BIGINT) AS feature_events,
       CAST(coalesce(vb.n, 0) AS BIGINT) AS on_new,
       coalesce(vb.n, 0) / t.n AS share
FROM ch
JOIN tot t ON t.feature = ch.feature
 AND t.bucket >= time_bucket(CAST($bucket AS INTERVAL), ch.ts) - CAST($bucket AS INTERVAL)
 AND t.bucket < ch.ts + CAST($horizon AS INTERVAL)
LEFT JOIN vb ON vb.feature = ch.feature AND vb.col = ch."column"
 AND vb.version = ch.to_version AND vb.bucket = t.bucket
WHERE ch."column" IS NOT NULL
ORDER BY ch.change_id, t.bucket"""


class ChangesResult(Result):
    """Changes, one row each; ``.rollout`` holds the share of traffic per bucket."""

    kind = "changes"

    def __init__(self, df: pl.DataFrame, rollout: pl.DataFrame | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.rollout = rollout if rollout is not None else pl.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["rollout"] = [dict(zip(self.rollout.columns, r, strict=True))
                          for r in self.rollout.iter_rows()] if self.rollout.height else []

        out["rollout"] = jsonable(out["rollout"])
        return out

    def plot(self, ax: Any = None) -> Any:
        """Rollout curves: share of the feature's traffic on each new version."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(9, 3.5))
        for (cid,), part in self.rollout.group_by("change_id", maintain_order=True):
            ax.step(part["bucket"].to_list(), part["share"].to_list(), where="post",
                    label=str(cid))
        ax.set_ylabel("share of feature traffic")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(self.title or "rollout of changes")
        if self.rollout.height:
            ax.legend(fontsize="small", loc="best")
        return ax


def changes(case: CaseHandle, *, feature: str | None = None, bucket: str = "1h",
            settle: str = "6h", rollout: bool = True) -> ChangesResult:
    """Declared changes plus those inferred from traffic (first appearance of a new
    prompt version, model, served model, retrieval index or release per feature), each
    with how its rollout went: ``full_rollout_at`` (first bucket at >= 99 % of the
    feature's traffic), ``peak_share``, ``rolled_back_at`` (back under 1 % after its peak).

    >>> case.changes(feature="support_chat").df["to_version"].to_list()[-2:]
    ['v13', 'v12']
    """
    params = {"bucket": interval(bucket), "settle": interval(settle), "feature": feature}
    sql = changes_sql()
    df = frame(case.con, sql, params)
    if df.height:
        df = df.with_columns(pl.col("events_on_new").cast(pl.Int64))
    roll = pl.DataFrame()
    if rollout and df.height:
        roll = frame(case.con, rollout_sql(), {**params, "horizon": ROLLOUT_HORIZON})
        df = df.join(_rollout_summary(roll), on="change_id", how="left")
    meta = {"declared": int((df["source"] != "inferred").sum()) if df.height else 0,
            "inferred": int((df["source"] == "inferred").sum()) if df.height else 0,
            "bucket": bucket, "rollout_horizon": ROLLOUT_HORIZON}
    return ChangesResult(df, rollout=roll, sql=sql, params=params, title="changes", meta=meta)


def _rollout_summary(roll: pl.DataFrame) -> pl.DataFrame:
    if roll.height == 0:
        return pl.DataFrame(schema={"change_id": pl.String, "full_rollout_at": pl.Datetime,
                                    "peak_share": pl.Float64, "rolled_back_at": pl.Datetime})
    roll = roll.with_columns(
        peak_at=pl.col("bucket").filter(pl.col("share") == pl.col("share").max())
        .min().over("change_id"))
    return roll.group_by("change_id").agg(
        full_rollout_at=pl.col("bucket").filter(pl.col("share") >= 0.99).min(),
        peak_share=pl.col("share").max().round(4),
        rolled_back_at=pl.col("bucket").filter((pl.col("bucket") > pl.col("peak_at"))
                                               & (pl.col("share") < 0.01)).min())


# ---------------------------------------------------------------------------------------
# timelines

class TimelineResult(Result):
    """A metric per bucket (and per group); ``.plot()`` draws it with change markers."""

    kind = "timeline"

    def __init__(self, df: pl.DataFrame, markers: pl.DataFrame | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.markers = markers if markers is not None else pl.DataFrame()

    def to_dict(self) -> dict[str, Any]:

        out = super().to_dict()
        out["markers"] = jsonable(self.markers.to_dicts()) if self.markers.height else []
        return out

    def plot(self, ax: Any = None, max_markers: int = 12) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(10, 3.8))
        groups = (self.df.partition_by("group", maintain_order=True)
                  if "group" in self.df.columns else [self.df])
        for part in groups:
            label = str(part["group"][0]) if "group" in part.columns else self.meta["metric"]
            ax.plot(part["bucket"].to_list(), part["value"].to_list(), label=label, lw=1.2)
            if "low" in part.columns:
                ax.fill_between(part["bucket"].to_list(), part["low"].fill_null(0).to_list(),
                                part["high"].fill_null(0).to_list(), alpha=0.15)
        _draw_markers(ax, self.markers.head(max_markers).sort("ts"))
        ax.set_ylabel(self.meta["metric"])
        ax.set_title(self.title)
        if len(groups) > 1:
            ax.legend(fontsize="small", loc="upper left")
        return ax


def _draw_markers(ax: Any, markers: pl.DataFrame) -> None:
    """Dashed change markers, labelled beside the line; labels of markers closer than
    1/30 of the x-range apart go on alternate sides and heights so they stay readable."""
    import matplotlib.dates as mdates

    if not markers.height:
        return
    low, high = ax.get_xlim()
    close = (high - low) / 30
    bottom, top = ax.get_ylim()
    slots = [(top, "right"), (top, "left"), (bottom + 0.45 * (top - bottom), "right"),
             (bottom + 0.45 * (top - bottom), "left")]
    previous, level = None, 0
    for row in markers.iter_rows(named=True):
        x = mdates.date2num(row["ts"])
        level = (level + 1) % len(slots) if previous is not None and \
            x - previous < close else 0
        previous = x
        y, side = slots[level]
        ax.axvline(row["ts"], color="#c0392b", ls="--", lw=0.9)
        ax.annotate(f"{row['feature']} {row['column'] or row['kind']}: {row['to_version']}",
                    (row["ts"], y), rotation=90, fontsize=6.5, va="top", ha=side,
                    color="#c0392b")


def timeline(case: CaseHandle, metric_name: str = "bad_rate", *, by: str | None = None,
             bucket: str = "1h", where: Pattern = None, level: float = 0.95,
             markers: bool = True) -> TimelineResult:
    """A metric over time: rates (bad_rate, error_rate, refusal_rate, flag_rate,
    negative_feedback, label:NAME, cluster:ID) with count, denominator and Wilson interval;
    latency_p50/p95, tokens, cost (per event), volume, cost_total. ``by`` splits by a
    column or attributes key; ``where`` is SQL over ``event_facts``. Change markers are
    the declared and inferred changes of the features shown.

    >>> tl = case.timeline("refusal_rate", by="prompt_version", bucket="1d")
    >>> sorted(set(tl.df["group"]))[:3]
    ['v12', 'v13', 'v2']
    """
    m = metric(metric_name)
    params: dict[str, Any] = {"bucket": interval(bucket), **m.params}
    where = select(case, where).inline() if where is not None else None
    group = f"coalesce(CAST({column(by)} AS VARCHAR), '(none)') AS \"group\", " if by else ""
    count = (f"count(*) FILTER (WHERE coalesce({m.sql}, false)) AS count, "
             if m.kind == "rate" else "")
    sql = f"""
SELECT time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket, {group}
       {m.aggregate()} AS value, {count}count(*) AS n
FROM event_facts
WHERE ts IS NOT NULL{f' AND ({where})' if where else ''}
GROUP BY ALL ORDER BY ALL"""
    df = frame(case.con, sql, params)
    if m.kind == "rate" and df.height:
        _, low, high = wilson_arrays(df["count"].to_numpy(), df["n"].to_numpy(), level)
        df = df.with_columns(pl.Series("low", low), pl.Series("high", high))
    marks = pl.DataFrame()
    if markers:
        marks = changes(case, rollout=False).df
        if marks.height and where is None and by == "feature":
            marks = marks.filter(pl.col("feature").is_in(df["group"].unique().to_list()))
    title = f"{metric_name} per {bucket}" + (f" by {by}" if by else "")
    meta = {"metric": metric_name, "bucket": bucket, "by": by, "where": where,
            "buckets": df["bucket"].n_unique() if df.height else 0,
            "interval": f"Wilson {level:.0%}" if m.kind == "rate" else None,
            "changes_marked": marks.height}
    return TimelineResult(df, markers=marks, sql=sql, params=params, title=title, meta=meta)

"""The post-mortem's charts, drawn for a reader at a glance.

- ``timeline``: the pattern rate in percent with its 95% band, the exposure window, and
  every change as a numbered marker; the numbers sit in a strip above the plot, staggered
  onto a second row when two changes land close together, and a key under the plot says
  which change each number is (id, what changed, when). The x-axis ends with the data.
- ``impact``: one small panel per cohort dimension (plan, locale, region, ...), each bar
  labelled with its user count (suppressed cells read ``<k``, no bar).
- ``clusters``: events per day of the largest clusters, the exposure window shaded, the
  full cluster titles in a legend under the plot.

Figures are :class:`matplotlib.figure.Figure` objects built without pyplot (no global
state), so a test can inspect them: :func:`label_boxes` gives the marker labels' extents.

>>> from forensics.postmortem.facts import gather
>>> fig = timeline_figure(gather(case))
>>> fig.axes[0].get_ylabel(), len(label_boxes(fig)) > 0
('events showing the pattern', True)
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from forensics.postmortem.facts import PostmortemFacts

RED = "#c0392b"
BLUE = "#1f5fa8"
WINDOW = "#f5b7b1"
MARKER_GAP = 0.035     # in axes fraction: closer marker labels go on the next row


def _bounds(values: list[Any]) -> tuple[Any, Any]:
    clean = [v for v in values if v is not None]
    return (min(clean), max(clean)) if clean else (None, None)


def timeline_figure(inc: PostmortemFacts) -> Figure:
    """The pattern rate over time with the exposure window and numbered change markers."""
    assert inc.series is not None
    df = inc.series.df.sort("bucket")
    x = df["bucket"].to_list()
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, df["value"].to_list(), color=BLUE, lw=1.4, label="pattern rate")
    if "low" in df.columns:
        ax.fill_between(x, df["low"].fill_null(0).to_list(), df["high"].fill_null(0).to_list(),
                        color=BLUE, alpha=0.15, lw=0, label="95% interval")
    lo, hi = _bounds(x)
    if inc.change and inc.change["window"][0] is not None:
        start = max(inc.change["window"][0], lo)
        end = min(inc.change["window"][1] or hi, hi)
        ax.axvspan(start, end, color=WINDOW, alpha=0.35, lw=0,
                   label=f"exposure window ({inc.change['change_id']})")
    if lo is not None and lo != hi:
        ax.set_xlim(lo, hi)
    top = max([v for v in df["high" if "high" in df.columns else "value"].to_list()
               if v is not None] or [0.0])
    ax.set_ylim(0, max(top * 1.08, 0.01))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("events showing the pattern")
    ax.set_title(inc.series.title, loc="left", fontsize=10)
    markers = _markers(inc, lo, hi)
    _draw_markers(ax, markers)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    if markers:
        key = "\n".join(f"{i}  {m['ts']:%m-%d %H:%M}  {m['change_id']}: {m['what']}"
                        for i, m in enumerate(markers, 1))
        ax.text(0.0, -0.1, key, fontsize=7.5, va="top", ha="left", family="monospace",
                transform=ax.transAxes)
    return fig


def _markers(inc: PostmortemFacts, lo: Any, hi: Any) -> list[dict[str, Any]]:
    assert inc.series is not None
    marks = getattr(inc.series, "markers", pl.DataFrame())
    if not marks.height or lo is None:
        return []
    out = []
    for r in marks.sort("ts", "change_id").iter_rows(named=True):
        if r["ts"] is None or not lo <= r["ts"] <= hi:
            continue
        what = f"{r.get('column') or r['kind']} {r.get('from_version') or '?'} -> " \
               f"{r['to_version']}"
        cid = str(r["change_id"])
        out.append({"ts": r["ts"], "what": what,
                    "change_id": "inferred" if cid.startswith("inferred:") else cid})
    return out


def _draw_markers(ax: Any, markers: list[dict[str, Any]]) -> None:
    """A dashed line per change and its number in a strip above the plot; a number that
    would touch the previous one in its row goes to the next row up."""
    import matplotlib.dates as mdates

    if not markers:
        return
    x0, x1 = ax.get_xlim()
    last: list[float] = []            # per row, the x (axes fraction) of its last label
    for i, m in enumerate(markers, 1):
        fx = (mdates.date2num(m["ts"]) - x0) / (x1 - x0) if x1 > x0 else 0.5
        row = next((k for k, x in enumerate(last) if fx - x >= MARKER_GAP), len(last))
        if row == len(last):
            last.append(fx)
        last[row] = fx
        ax.axvline(m["ts"], color=RED, ls="--", lw=0.9, alpha=0.8)
        ax.annotate(str(i), (fx, 1.0), xytext=(0, 4 + 14 * row), textcoords="offset points",
                    xycoords="axes fraction", ha="center", va="bottom", fontsize=8,
                    color="white", fontweight="bold", gid=f"marker-{i}",
                    bbox={"boxstyle": "circle,pad=0.25", "fc": RED, "ec": "none"})


def label_boxes(fig: Figure, prefix: str = "marker-") -> list[Any]:
    """The drawn extents (display units) of the marker labels, for overlap checks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    patches = [t.get_bbox_patch() for ax in fig.axes for t in ax.texts
               if str(t.get_gid()).startswith(prefix)]
    return [p.get_window_extent(renderer) for p in patches if p is not None]


def _users(value: Any) -> tuple[float, str]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), f"{int(value):,}"
    text = str(value)
    return (float(text), text) if text.isdigit() else (0.0, text)


def impact_figure(inc: PostmortemFacts, cells: Any, top: int = 6) -> Figure:
    """One panel per cohort dimension: affected users of its largest ``top`` cohorts."""
    dims = []
    for b, result in inc.cohorts.items():
        df = cells(result).filter(pl.col("cohort") != "all").head(top)
        if df.height:
            dims.append((b, df))
    cols = min(3, max(len(dims), 1))
    rows = max(1, math.ceil(len(dims) / cols))
    fig = Figure(figsize=(3.4 * cols, 0.5 + 1.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (b, df) in zip(axes, dims, strict=False):
        names = [str(c) for c in df["cohort"].to_list()][::-1]
        pairs = [_users(v) for v in df["users"].to_list()][::-1]
        ys = range(len(names))
        ax.barh(list(ys), [p[0] for p in pairs], color=RED, height=0.65)
        ax.set_yticks(list(ys), names, fontsize=8)
        ax.set_title(f"by {b}", loc="left", fontsize=9)
        biggest = max([p[0] for p in pairs] or [1.0]) or 1.0
        ax.set_xlim(0, biggest * 1.3)
        for y, (value, text) in zip(ys, pairs, strict=True):
            ax.annotate(text, (value, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in axes[len(dims):]:
        ax.set_visible(False)
    fig.suptitle("affected users by cohort (the same users, split each way)", fontsize=10,
                 x=0.01, ha="left")
    return fig


def clusters_figure(inc: PostmortemFacts, title: Any, n: int = 6) -> Figure:
    """Events per day of the ``n`` largest clusters, with the exposure window."""
    assert inc.clusters is not None
    df = inc.clusters.df
    top = (df.group_by("cluster_id", "size").agg().sort(["size", "cluster_id"],
                                                         descending=[True, False])
           .head(n)["cluster_id"].to_list())
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    ax = fig.add_subplot()
    days: list[Any] = []
    for cid in top:
        part = df.filter(pl.col("cluster_id") == cid).sort("day")
        days += part["day"].to_list()
        ax.plot(part["day"].to_list(), part["events"].to_list(), marker="o", ms=3, lw=1.2,
                label=f"{cid} ({int(part['size'][0]):,} events): {title(part['title'][0])}")
    lo, hi = _bounds(days)
    if inc.change and inc.change["window"][0] is not None and lo is not None:
        start = inc.change["window"][0]
        end = inc.change["window"][1] or hi
        ax.axvspan(_as_dt(start), _as_dt(end), color=WINDOW, alpha=0.35, lw=0,
                   label=f"exposure window ({inc.change['change_id']})")
    if lo is not None and lo != hi:
        ax.set_xlim(_as_dt(lo), _as_dt(hi))
    ax.set_ylim(bottom=0)
    ax.set_ylabel("events per day")
    ax.set_title("failure clusters over time", loc="left", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2, fontsize=7.5,
              frameon=False)
    return fig


def _as_dt(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return value


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Software": None})
    return path


__all__ = ["clusters_figure", "impact_figure", "label_boxes", "save", "timeline_figure"]

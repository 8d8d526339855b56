"""The incident timeline: changes, onset, first signals, simulated alerts, failure clusters
and milestones merged into one ordered table, with the times to detect, contain and
resolve computed from it.

>>> tl = case.incident_timeline("over_refusal")
>>> tl.meta["durations"]["exposure"]
{'hours': 53.0, 'text': '53 h 0 min', 'from': 'onset', 'to': 'end of exposure'}
>>> tl.plot().figure.savefig("timeline.png")
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from forensics.cause.changepoints import hours
from forensics.cause.changes import changes
from forensics.core.db import frame
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.playbook.detection_gap import DetectionResult, choose, detection_gap
from forensics.playbook.milestones import milestones

KIND_COLOURS = {"change": "#7f8c8d", "suspect": "#e67e22", "onset": "#c0392b",
                "signal": "#16a085", "alert": "#8e44ad", "cluster": "#2980b9",
                "milestone": "#2c3e50"}
SCHEMA: dict[str, Any] = {"ts": pl.Datetime("us"), "kind": pl.String, "event": pl.String,
                          "detail": pl.String, "source": pl.String}

CLUSTERS_SQL = """
WITH latest AS (
    SELECT coalesce((SELECT run_id FROM runs WHERE stage = 'cluster'
                     ORDER BY created_at DESC LIMIT 1),
                    (SELECT max(run_id) FROM clusters)) AS run_id
), members AS (
    SELECT m.cluster_id, e.ts, coalesce({cond}, false) AS in_pattern
    FROM cluster_members m JOIN event_facts e USING (event_id)
    WHERE m.run_id = (SELECT run_id FROM latest)
)
SELECT c.cluster_id, c.title, c.category, min(m.ts) AS first_seen, count(*) AS size,
       count(*) FILTER (WHERE m.in_pattern) AS in_pattern
FROM members m JOIN clusters c ON c.cluster_id = m.cluster_id
 AND c.run_id = (SELECT run_id FROM latest)
GROUP BY ALL
HAVING count(*) FILTER (WHERE m.in_pattern) > 0
ORDER BY size DESC
LIMIT $max_clusters"""


class IncidentTimelineResult(Result):
    """One row per timeline entry (``.df``, in time order); computed durations in
    ``meta['durations']``; ``.series`` is the pattern rate for the chart."""

    kind = "incident_timeline"

    def __init__(self, df: pl.DataFrame, *, series: pl.DataFrame, **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.series = series

    def to_markdown(self, max_rows: int = 100) -> str:
        lines = [f"**{self.title}**", ""]
        lines += [f"- {name.replace('_', ' ')}: {d['text']} ({d['from']} -> {d['to']})"
                  for name, d in self.meta["durations"].items() if d["hours"] is not None]
        rows = ["| time (UTC) | kind | event | source |", "|---|---|---|---|"]
        rows += [f"| {r['ts']:%Y-%m-%d %H:%M} | {r['kind']} | "
                 f"{str(r['event']).replace('|', '/')} | {r['source']} |"
                 for r in self.df.head(max_rows).iter_rows(named=True)]
        return "\n".join([*lines, "", *rows])

    def plot(self, ax: Any = None) -> Any:
        """Two panels: the pattern rate around the incident, and the entries as a list
        on the same time axis (one line each, coloured by kind)."""
        import matplotlib.pyplot as plt

        rows = self.df
        if ax is None:
            _, (top, ax) = plt.subplots(
                2, 1, figsize=(11, 2.4 + 0.28 * max(rows.height, 4)), sharex=True,
                gridspec_kw={"height_ratios": [1, max(1.5, 0.12 * rows.height)]})
        else:
            top = None
        if rows.height:
            lo = min(rows["ts"].min(), self.meta["onset"] or rows["ts"].min())  # type: ignore[type-var]
            hi = max(rows["ts"].max(), self.meta["end"])  # type: ignore[type-var]
            pad = (hi - lo) * 0.08 + dt.timedelta(hours=1)
            lo, hi = lo - pad, hi + pad
        s = self.series
        if top is not None and s.height and rows.height:
            s = s.filter((pl.col("bucket") >= lo) & (pl.col("bucket") <= hi))
            top.plot(s["bucket"].to_list(), s["rate"].to_list(), color="#34495e", lw=0.9)
            top.set_ylabel("pattern rate")
            top.set_title(self.title)
            for r in rows.filter(pl.col("kind").is_in(["onset", "milestone"])).iter_rows(
                    named=True):
                top.axvline(r["ts"], color=KIND_COLOURS[r["kind"]], lw=0.8, alpha=0.6)
        for i, r in enumerate(rows.iter_rows(named=True)):
            colour = KIND_COLOURS.get(r["kind"], "#95a5a6")
            ax.plot([r["ts"]], [-i], "o", color=colour, ms=5)
            ax.annotate(f" {r['ts']:%m-%d %H:%M}  {str(r['event'])[:70]}", (r["ts"], -i),
                        fontsize=7, va="center", color=colour)
        ax.set_yticks([])
        ax.set_ylim(-rows.height - 0.5, 0.8)
        if rows.height:
            ax.set_xlim(lo, hi + (hi - lo) * 0.6)     # room for the labels on the right
        if top is None:
            ax.set_title(self.title)
        return ax


def incident_timeline(case: CaseHandle, pattern: Pattern = None, *, bucket: str = "1h",
                      suspect: bool | str = True, lookback: str = "72h",
                      max_clusters: int = 10,
                      detection: DetectionResult | None = None) -> IncidentTimelineResult:
    """One ordered timeline of the incident of a pattern.

    Entries: declared and inferred changes from ``lookback`` before the onset to the end
    of the exposure (the suspect marked), the onset and the change point, the first bad
    output, guardrail flag, negative feedback and complaint, the simulated alerts (the
    proposed rule of each family from
    :func:`forensics.playbook.detection_gap.detection_gap`), the first
    appearance of each failure cluster holding pattern events (latest clustering run),
    the recorded milestones, and the inferred end of the exposure. ``meta['durations']``
    holds the times to detect, contain and resolve, the exposure, and how much sooner the
    proposed alert would have known, all computed from these entries.

    >>> "| time (UTC) | kind | event |" in case.incident_timeline("is_error").to_markdown()
    True
    """
    det = detection or detection_gap(case, pattern, bucket=bucket, suspect=suspect)
    ep = det.episode
    assert ep is not None
    m, em = det.meta, ep.meta
    rows: list[dict[str, Any]] = []
    rows += _change_rows(case, ep.onset, em["end"], em.get("suspect"), lookback)
    if ep.onset is not None:
        rows.append(_row(ep.onset, "onset", "incident onset", em["onset_source"], "computed"))
    if em.get("change_point") is not None and em["change_point"] != ep.onset:
        rows.append(_row(em["change_point"], "onset", "pattern rate rose (change point)",
                         f"rate {_pct(em.get('rate_before'))} -> {_pct(em.get('rate_after'))}",
                         "computed"))
    for key, what, count in (("first_bad_output", "first bad output", "bad_outputs"),
                             ("first_flag", "first guardrail flag", "flagged"),
                             ("first_negative_feedback", "first negative feedback",
                              "negative_feedback"),
                             ("first_complaint", "first complaint", "complaints")):
        if m.get(key) is not None:
            rows.append(_row(m[key], "signal", what, f"{m[count]} in all since the onset",
                             "computed"))
    rows += _alert_rows(det)
    rows += _cluster_rows(case, ep.pattern.cond, ep.pattern.params, max_clusters)
    marks = milestones(case).df
    for r in marks.filter(pl.col("current")).iter_rows(named=True) if marks.height else []:
        rows.append(_row(r["ts"], "milestone", r["name"], r["note"] or "", "recorded"))
    if em.get("contained_at") is not None and not str(em["contained_source"]).startswith(
            "recorded"):
        rows.append(_row(em["contained_at"], "milestone", "contained (inferred)",
                         em["contained_source"], "inferred"))
    if em.get("subsided_at") is not None:
        rows.append(_row(em["subsided_at"], "milestone", "pattern subsided",
                         "rate back to baseline (change point)", "computed"))
    df = pl.DataFrame(rows, schema=SCHEMA).sort(["ts", "kind"])
    current = {r["name"]: r["ts"] for r in marks.filter(pl.col("current")).iter_rows(
        named=True)} if marks.height else {}
    meta = {"pattern": ep.pattern.desc, "onset": ep.onset, "onset_source": em["onset_source"],
            "end": em["end"], "end_source": em["end_source"],
            "durations": durations(ep.onset, current, em, m), "entries": df.height}
    return IncidentTimelineResult(df, series=ep.df, sql=ep.sql, params=ep.params, meta=meta,
                                  title=f"incident timeline: {ep.pattern.desc}")


def _row(ts: Any, kind: str, event: str, detail: str, source: str) -> dict[str, Any]:
    return {"ts": ts, "kind": kind, "event": event, "detail": detail, "source": source}


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.3g}%"


def _change_rows(case: CaseHandle, onset: dt.datetime | None, end: dt.datetime,
                 suspect: dict[str, Any] | None, lookback: str) -> list[dict[str, Any]]:
    chg = changes(case, rollout=False).df
    if chg.height == 0:
        return []
    if onset is not None:
        lo = onset - dt.timedelta(hours=hours(lookback))
        chg = chg.filter((pl.col("ts") >= lo) & (pl.col("ts") <= end + dt.timedelta(days=1)))
    top = suspect["change_id"] if suspect else None
    out = []
    for c in chg.iter_rows(named=True):
        what = (f"{c['feature'] or 'all features'} {c['column'] or c['kind']} "
                f"{c['from_version'] or '?'} -> {c['to_version']} ({c['change_id']})")
        is_top = c["change_id"] == top
        detail = c["note"] or ""
        if is_top and suspect:
            detail = f"suspect #{suspect.get('rank') or 1} ({suspect['verdict']}); {detail}"
        out.append(_row(c["ts"], "suspect" if is_top else "change", what, detail,
                        c["source"] or "declared"))
    return out


def _alert_rows(det: DetectionResult) -> list[dict[str, Any]]:
    out = []
    for kind in ("threshold", "cusum"):
        best = choose(det.df.filter(pl.col("kind") == kind), det.meta["max_false_alarms"],
                      det.meta["min_headroom"])
        if best is None:
            continue
        out.append(_row(best["fired_at"], "alert", f"alert would have fired: {best['rule']}",
                        f"{best['false_alarms']} false alarm(s) in the "
                        f"{det.meta.get('history_weeks') or 0:g} weeks before", "simulated"))
    return out


def _cluster_rows(case: CaseHandle, cond: str, params: dict[str, Any],
                  max_clusters: int) -> list[dict[str, Any]]:
    if not case.con.execute("SELECT count(*) FROM clusters").fetchall()[0][0]:
        return []
    found = frame(case.con, CLUSTERS_SQL.format(cond=cond),
                  {**params, "max_clusters": max_clusters})
    return [_row(r["first_seen"], "cluster", f"first seen: {r['title'] or r['cluster_id']}",
                 f"{r['cluster_id']}, {r['category'] or 'uncategorised'}, {r['size']} events "
                 f"({r['in_pattern']} in the pattern)", "computed")
            for r in found.iter_rows(named=True)]


def _span(a: dt.datetime | None, b: dt.datetime | None, src: str, dst: str) -> dict[str, Any]:
    if a is None or b is None:
        return {"hours": None, "text": "not recorded", "from": src, "to": dst}
    minutes = round((b - a).total_seconds() / 60)
    sign, minutes = ("-" if minutes < 0 else ""), abs(minutes)
    text = f"{sign}{minutes // 60} h {minutes % 60} min" if minutes >= 60 else \
        f"{sign}{minutes} min"
    return {"hours": round((b - a).total_seconds() / 3600, 2), "text": text, "from": src,
            "to": dst}


def durations(onset: dt.datetime | None, marks: dict[str, dt.datetime],
              ep_meta: dict[str, Any], det_meta: dict[str, Any]) -> dict[str, Any]:
    """The playbook's times, from the timeline's own entries (``None`` when an end point
    is missing: record it with ``case.mark``)."""
    contained = marks.get("contained") or ep_meta.get("contained_at")
    signals = [det_meta.get(k) for k in ("first_flag", "first_negative_feedback",
                                         "first_complaint")]
    first_signal = min((s for s in signals if s is not None), default=None)
    alert = (det_meta.get("best_rule") or {}).get("fired_at")
    return {"time_to_detect": _span(onset, marks.get("detected"), "onset", "detected"),
            "time_to_contain": _span(onset, contained, "onset", "contained"),
            "detect_to_contain": _span(marks.get("detected"), contained, "detected",
                                       "contained"),
            "time_to_mitigate": _span(onset, marks.get("mitigated"), "onset", "mitigated"),
            "time_to_resolve": _span(onset, marks.get("resolved"), "onset", "resolved"),
            "exposure": _span(onset, ep_meta.get("end"), "onset", "end of exposure"),
            "first_signal": _span(onset, first_signal, "onset", "first signal"),
            "alert_would_fire": _span(onset, alert, "onset", "proposed alert"),
            "alert_lead_over_detection": _span(alert, marks.get("detected"),
                                               "proposed alert", "detected")}

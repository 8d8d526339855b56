"""The playbook's answers in one call, for the post-mortem: severity and why, time to detect
and contain, the alert that would have caught it sooner and its false alarms, and what a
faster rollback would have spared.

>>> pb = case.playbook("over_refusal")
>>> pb.meta["severity"], pb.meta["alert_false_alarms"]
('critical', 0)

One episode (onset, suspect, end of exposure) is computed once and shared by
:func:`forensics.playbook.severity.severity`,
:func:`forensics.playbook.detection_gap.detection_gap`,
:func:`forensics.playbook.containment.containment` and
:func:`forensics.playbook.timeline.incident_timeline`;
their full results are kept on the returned object (``.severity``, ``.detection``,
``.containment``, ``.timeline``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.playbook.containment import ContainmentResult, containment
from forensics.playbook.detection_gap import DetectionResult, detection_gap
from forensics.playbook.severity import SeverityResult, severity
from forensics.playbook.timeline import IncidentTimelineResult, incident_timeline


class PlaybookResult(Result):
    """One row per answer (``.df``: item, value, detail); the figures in ``meta``; the
    stage results as attributes."""

    kind = "playbook"

    def __init__(self, df: pl.DataFrame, *, severity: SeverityResult,
                 detection: DetectionResult, containment: ContainmentResult | None,
                 timeline: IncidentTimelineResult, **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.severity = severity
        self.detection = detection
        self.containment = containment
        self.timeline = timeline

    def plot(self, ax: Any = None) -> Any:
        """The incident timeline chart."""
        return self.timeline.plot(ax)


def playbook(case: CaseHandle, pattern: Pattern = None, *, bucket: str = "1h",
             suspect: bool | str = True, category: str | None = None,
             rules: str | Path | list[dict[str, Any]] | None = None,
             max_false_alarms: int = 0) -> PlaybookResult:
    """Severity, detection gap, containment what-if and timeline of a pattern's incident.

    The containment what-if is a rollback of the suspect change; when the case names no
    suspect it falls back to switching the feature off (``meta['containment_mode']``), and
    is left out (with the reason) when neither can be evaluated.

    >>> print(case.playbook("over_refusal").to_markdown().splitlines()[0])
    **playbook: label over_refusal**
    """
    det = detection_gap(case, pattern,
                        bucket=bucket, suspect=suspect, max_false_alarms=max_false_alarms)
    ep = det.episode
    assert ep is not None
    sev = severity(case, category=category, rules=rules, ep=ep)
    what, why_not = None, None
    for mode in ("rollback", "fallback"):
        try:
            what = containment(case, mode=mode, ep=ep, detection=det)
            break
        except UsageError as exc:
            why_not = exc.message
    tl = incident_timeline(case, detection=det)
    meta = _figures(sev, det, what, tl)
    if what is None:
        meta["containment_unavailable"] = why_not
    return PlaybookResult(_rows(meta), severity=sev, detection=det, containment=what,
                          timeline=tl, sql=ep.sql, params=ep.params, meta=meta,
                          title=f"playbook: {ep.pattern.desc}")


def _figures(sev: SeverityResult, det: DetectionResult, what: ContainmentResult | None,
             tl: IncidentTimelineResult) -> dict[str, Any]:
    best = det.meta.get("best_rule") or {}
    d = tl.meta["durations"]
    out: dict[str, Any] = {
        "severity": sev.meta["level"], "respond_within": sev.meta["respond_within"],
        "severity_rule": sev.meta["rule"], "severity_why": sev.meta["why"],
        "severity_reason": sev.meta["reason"],
        "response_within_target": sev.meta["response_within_target"],
        "onset": det.meta["onset"], "onset_source": det.meta["onset_source"],
        "suspect": (det.meta.get("suspect") or {}).get("change_id"),
        "time_to_detect_hours": d["time_to_detect"]["hours"],
        "time_to_contain_hours": d["time_to_contain"]["hours"],
        "time_to_resolve_hours": d["time_to_resolve"]["hours"],
        "exposure_hours": d["exposure"]["hours"],
        "first_signal_hours": d["first_signal"]["hours"],
        "first_complaint": det.meta.get("first_complaint"),
        "flag_coverage": det.meta.get("flag_coverage"),
        "alert_rule": best.get("rule"), "alert_fired_at": best.get("fired_at"),
        "alert_delay_hours": best.get("delay_hours"),
        "alert_false_alarms": best.get("false_alarms"),
        "alert_false_alarms_per_week": best.get("false_alarms_per_week"),
        "alert_history_weeks": det.meta.get("history_weeks"),
        "alert_lead_hours": det.meta.get("alert_lead_hours"),
        "alert_query": det.alert_name}
    if what is not None:
        out["containment_mode"] = what.meta["mode"]
        out["contained_at"] = what.meta["exposure_end"]
        out["contained_source"] = what.meta["exposure_end_source"]
        for label, key in (("onset", "onset"), ("alert", "alert"), ("detected", "detected")):
            row = what.at(label)
            if row is not None:
                out[f"users_spared_if_{key}"] = row["users_spared"]
                out[f"users_spared_if_{key}_interval"] = [row["users_low"], row["users_high"]]
                out[f"events_spared_if_{key}"] = row["events_spared"]
                out[f"events_spared_if_{key}_interval"] = [row["events_low"],
                                                           row["events_high"]]
    return out


def _rows(m: dict[str, Any]) -> pl.DataFrame:
    def hours(h: float | None) -> str:
        return "not recorded" if h is None else f"{h:g} h"

    rows = [("severity", f"{m['severity']} (respond within {m['respond_within']})",
             f"rule {m['severity_rule']}: {m['severity_why']}"),
            ("onset", str(m["onset"]), m["onset_source"]),
            ("time to detect", hours(m["time_to_detect_hours"]), "onset -> detected"),
            ("time to contain", hours(m["time_to_contain_hours"]),
             f"onset -> contained ({m.get('contained_source') or 'not contained'})"),
            ("first signal", hours(m["first_signal_hours"]),
             "onset -> first guardrail flag, negative feedback or complaint")]
    if m["alert_rule"]:
        rows.append(("alert that would have caught it",
                     f"{hours(m['alert_delay_hours'])} after the onset",
                     f"{m['alert_rule']}; {m['alert_false_alarms']} false alarm(s) in the "
                     f"{m['alert_history_weeks'] or 0:g} weeks before"))
    for key, when in (("alert", "when the alert would have fired"),
                      ("detected", "at detection")):
        if f"users_spared_if_{key}" in m:
            lo, hi = m[f"users_spared_if_{key}_interval"]
            rows.append((f"users spared by a {m['containment_mode']} {when}",
                         f"{m[f'users_spared_if_{key}']:.0f} [{lo:.0f}, {hi:.0f}]",
                         f"{m[f'events_spared_if_{key}']:.0f} bad outputs"))
    return pl.DataFrame(rows, schema=["item", "value", "detail"], orient="row")

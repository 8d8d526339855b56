"""Write it up: the post-mortem, its charts, the notification drafts and the eval pack.

>>> pm = case.postmortem("postmortem/")
>>> sorted(p.name for p in Path("postmortem").iterdir())[:3]
['alerts', 'charts', 'evals']

The seed playbook's post-mortem, section by section (summary; timeline of detection,
containment, investigation and fix; impact; root cause with the suspect evidence; why it
was not caught earlier; what's changing; communication), as Markdown with PNG charts and
a self-contained HTML twin, plus the affected-user notice and status-page text for a
person to edit, and the regression eval pack (:mod:`forensics.postmortem.evalpack`).

Every number comes from a recorded finding (SQL and parameters in the case, listed in
the evidence appendix), so it can be re-run: :func:`forensics.postmortem.facts.gather` records
them, reusing a finding that is already there. User and session ids are pseudonymised
and quoted text redacted unless ``redact=False``; cohort cells of fewer than
``min_cell`` users are shown as ``<k``. Nothing depends on the clock: the same case
gives the same bytes.

Each section is one function ``(doc, incident, writer)``: to add or replace one (for
example severity triage or the detection gap of a later stage), edit :data:`SECTIONS`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from forensics.core import stats
from forensics.core.db import count_rows, frame
from forensics.core.errors import ReadOnlyCaseError, UsageError
from forensics.core.handle import CaseHandle
from forensics.core.numbers import estimate, percent, signed, whole
from forensics.core.redact import case_key, pseudonym, redact_text
from forensics.core.result import Result, dumps
from forensics.core.safe import markdown_text
from forensics.core.selection import Pattern
from forensics.impact.exact import ImpactResult, suppress
from forensics.playbook.incidents import incidents
from forensics.postmortem.document import Document
from forensics.postmortem.evalpack import expectation, export_evals
from forensics.postmortem.facts import PostmortemFacts, gather

# =======================================================================================
# how to write it

@dataclass
class Writer:
    """Output choices: redaction, small-cell suppression, where the files go."""

    out: Path
    redact: bool
    min_cell: int
    key: bytes
    charts: dict[str, Path] = field(default_factory=dict)
    user_ids: set[str] = field(default_factory=set)   # ids found in finding parameters

    def user(self, value: str | None) -> str:
        return (pseudonym(value, self.key) or "") if self.redact else (value or "")

    def text(self, value: str | None, limit: int = 400, request: str | None = None) -> str:
        text = (redact_text(value, request) if self.redact else value) or ""
        text = " ".join(text.split())
        return text if len(text) <= limit else text[:limit - 3] + "..."

    def cells(self, result: ImpactResult) -> pl.DataFrame:

        return suppress(result.df, self.min_cell) if self.min_cell else result.df


def _when(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _span(a: Any, b: Any) -> str:
    if not isinstance(a, dt.datetime) or not isinstance(b, dt.datetime):
        return "unknown"
    hours = (b - a).total_seconds() / 3600
    if abs(hours) < 1:
        return f"{abs(hours) * 60:.0f} minutes" if abs(hours) * 60 >= 1 else "under a minute"
    return f"{hours / 24:.1f} days" if abs(hours) >= 48 else f"{hours:.1f} hours"


def _n(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _count(w: Writer, value: Any) -> str:
    """A total as exported: below the small-cell threshold it reads ``<k``."""
    if w.min_cell and isinstance(value, int) and value < w.min_cell:
        return f"<{w.min_cell}"
    return _n(value)


# =======================================================================================
# sections

def section_summary(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    m = inc.impact.meta
    c = inc.change
    doc.heading("Summary")
    where = f" in {c['feature']}" if c else ""
    doc.para(f"Between {_when(m['first_exposure'])} and {_when(m['last_exposure'])}, "
             f"{_count(w, m['users'])} users in {_count(w, m['sessions'])} sessions received "
             f"{_count(w, m['events'])} responses showing {_pattern_words(inc)}{where}"
             f"{inc.cite('impact')}.")
    if c:
        doc.para(f"The likely cause is the {c['kind']} change {c['change_id']} "
                 f"({c['column'] or c['kind']} {c['from_version']} -> {c['to_version']}"
                 f"{': ' + w.text(c['note']) if c.get('note') else ''}), in effect from "
                 f"{_when(c['window'][0])} to {_when(c['window'][1])}"
                 f"{inc.cite('suspects')}. It served {_count(w, m.get('exposed_users'))} users"
                 f"{inc.cite('exposure')}; {_share(m['users'], m.get('exposed_users'))} of them "
                 "were affected.")
    else:
        doc.para("No change in the case explains the pattern: the root cause is not "
                 "established from this evidence.")


def section_severity(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    """The seed's triage matrix: level, response time, the rule that decided it and the
    numbers it used (:func:`forensics.playbook.severity.severity`)."""
    if inc.playbook is None:
        return
    m = inc.playbook.severity.meta
    doc.heading(f"Severity: {m['level']}{inc.cite('severity')}")
    doc.para(f"Severity **{m['level']}**: respond within {m['respond_within']}. Rule "
             f"`{m['rule']}` decided it: {m['why']}.")
    ev = m.get("evidence") or {}
    scope = (f"Severity weighs every event of the pattern in the incident window and the "
             f"features it touched ({ev.get('affected_events', 0):,} events), whichever "
             "version served it; the impact section counts only the events served by the "
             "changed version." if inc.change is not None else None)
    doc.bullets([f"Evidence: {w.text(m['reason'], 600).rstrip('.')}."] + [
        f"Note: {w.text(str(x), 300)}" for x in m.get("warnings") or []]
        + ([scope] if scope else []))


def _share(part: Any, whole: Any) -> str:
    if not isinstance(part, int) or not isinstance(whole, int) or whole == 0:
        return "an unknown share"
    return f"{100 * part / whole:.1f}%"


def section_timeline(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    if inc.playbook is not None:
        doc.heading(f"Timeline (UTC){inc.cite('incident_timeline')}")
        tl = inc.playbook.timeline
        doc.table(["time", "what happened", "detail", "source"],
                  [[_when(r["ts"]), w.text(r["event"], 160), w.text(r["detail"], 200),
                    r["source"]] for r in tl.df.iter_rows(named=True)])
        durations = tl.meta.get("durations", {})
        doc.bullets([f"{name.replace('_', ' ').capitalize()}: {d['text']} ({d['from']} -> "
                     f"{d['to']}){inc.cite('incident_timeline')}"
                     for name, d in durations.items() if d.get("hours") is not None])
    else:
        doc.heading("Timeline (UTC)")
        rows = [[_when(ts), what, source] for ts, what, source in timeline_rows(inc)]
        doc.table(["time", "what happened", "source"], rows)
    first = inc.milestone("first affected event")
    signals = first_signals(inc)
    lines = []
    if signals:
        name, ts, cite = min(signals, key=lambda s: s[1])
        lines.append(f"Detection: the first signal was the {name} at {_when(ts)}, "
                     f"{_span(first, ts)} after the first affected event{cite}.")
    if inc.change and inc.change["window"][1] is not None:
        lines.append(f"Containment: the change stopped serving at "
                     f"{_when(inc.change['window'][1])}, {_span(first, inc.change['window'][1])} "
                     "after the first affected event.")
    c = inc.change
    if c and c["ended_by"]:
        fix = c["ended_by"]
        lines.append(f"Fix: {fix['change_id']} put {c['column']} {fix['to_version']} in place"
                     + (f": {w.text(fix['note'], 160)}" if fix.get("note") else "") + ".")
    elif c:
        lines.append("Fix: no later change of this version is in the evidence; the version "
                     f"was last served at {_when(c['window'][1])}.")
    if inc.recorded:
        # when the findings were recorded is kept in the case, not here: the same evidence
        # and parameters give the same post-mortem, byte for byte
        lines.append(f"Investigation: {len(inc.recorded)} findings recorded in the case, each "
                     "with its SQL and parameters in the evidence appendix.")
    doc.bullets(lines)
    if "timeline" in w.charts:
        doc.image(w.charts["timeline"], "pattern rate over time with change markers")


SIGNALS = (("first_flag", "first guardrail flag"),
           ("first_negative_feedback", "first negative feedback"),
           ("first_complaint", "first complaint"))
MILESTONE_SIGNALS = ("first moderation flag on an affected event",
                     "first negative feedback on an affected event",
                     "first complaint on an affected event")


def first_signals(inc: PostmortemFacts) -> list[tuple[str, Any, str]]:
    """(name, time, citation) of the first detection signals, under the one name and
    definition the timeline table uses: the playbook's (on any pattern event since the
    onset) when it ran, else the affected events' milestones."""
    if inc.playbook is not None:
        m = inc.playbook.detection.meta
        cite = inc.cite("incident_timeline")
        return [(name, m[key], cite) for key, name in SIGNALS if m.get(key) is not None]
    return [(n, t, inc.cite("milestones")) for n in MILESTONE_SIGNALS
            if (t := inc.milestone(n)) is not None]


def timeline_rows(inc: PostmortemFacts) -> list[tuple[Any, str, str]]:
    """(time, what happened, finding) for the timeline table, in time order."""
    rows: list[tuple[Any, str, str]] = []
    c = inc.change
    if c:
        rows.append((c["window"][0], f"{c['change_id']} deployed: {c['column'] or c['kind']} "
                     f"{c['from_version']} -> {c['to_version']} ({c['feature']})",
                     inc.findings.get("suspects", "")))
        if c["window"][1] is not None:
            rows.append((c["window"][1], f"{c['to_version']} stops serving (rolled back or "
                         "replaced): containment", inc.findings.get("suspects", "")))
    onset = inc.suspects.meta.get("onset") if inc.suspects is not None else None
    if onset is not None:
        rows.append((onset, "onset of the rise in the pattern rate (change-point detection)",
                     inc.findings.get("suspects", "")))
    for row in inc.milestones.df.iter_rows(named=True):
        if row["ts"] is not None:
            rows.append((row["ts"], row["milestone"], inc.findings.get("milestones", "")))
    return sorted(rows, key=lambda r: (_sortable(r[0]), r[1]))


def _sortable(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return dt.datetime.max


def section_impact(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    m = inc.impact.meta
    doc.heading("Impact")
    window = m.get("window") or [None, None]
    doc.para(f"Affected: events showing {_pattern_words(inc)}"
             + (f" served by {inc.change['change_id']}" if inc.change else "")
             + f" in the exposure window {window[0] or 'start of the evidence'} to "
             f"{window[1] or 'end of the evidence'} (UTC). Exact distinct counts"
             f"{inc.cite('impact')}:")
    doc.table(["measure", "value"], [
        ["users", _count(w, m["users"])], ["sessions", _count(w, m["sessions"])],
        ["events", _count(w, m["events"])],
        ["first exposure", _when(m["first_exposure"])],
        ["last exposure", _when(m["last_exposure"])],
        ["users hit more than once", _count(w, m["users_hit_repeatedly"])],
        ["users who gave negative feedback", _count(w, m["users_with_negative_feedback"])],
        ["users who complained", _count(w, m["users_who_complained"])],
        ["complaints", _count(w, m["complaints"])],
        *([[f"users served the changed version{inc.cite('exposure')}",
            _count(w, m["exposed_users"])],
           [f"events served by the changed version{inc.cite('exposure')}",
            _count(w, m["exposed_events"])]] if "exposed_users" in m else [])])
    for b, result in inc.cohorts.items():
        df = w.cells(result).filter(pl.col("cohort") != "all")
        if df.height == 0:
            continue
        doc.heading(f"By {b}{inc.cite('impact_' + b)}", level=3)
        doc.table([b, "users", "sessions", "events", "share of users", "complained"],
                  [[r["cohort"], r["users"], r["sessions"], r["events"],
                    "" if r["share_of_users"] is None else f"{100 * r['share_of_users']:.1f}%",
                    r["users_who_complained"]] for r in df.iter_rows(named=True)])
    if w.min_cell:
        doc.para(f"Cells of fewer than {w.min_cell} users are shown as <{w.min_cell} (and "
                 "one more cell where needed so they cannot be worked out from the total).")
    if "impact" in w.charts:
        doc.image(w.charts["impact"], "affected users by cohort")
    _estimate_block(doc, inc, w)
    _examples_block(doc, inc, w)


def _estimate_block(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    if inc.estimate is None:
        return
    e = inc.estimate.meta
    doc.heading(f"Estimated from the sampled review{inc.cite('estimate')}", level=3)
    doc.para(f"Reviewers judged {whole(e['reviewed_events'])} of {whole(e['flagged_events'])} "
             f"flagged events and confirmed {whole(e['confirmed_in_review'])}. Truly affected: "
             f"about {estimate(e['events_estimate'], e['events_low'], e['events_high'])} "
             f"events and {estimate(e['users_estimate'], e['users_low'], e['users_high'])} "
             f"users, {e['level']:.0%} intervals (method in the appendix)."
             + (" Some strata had fewer than 30 reviewed events: treat with care."
                if e.get("small_sample") else ""))


def _examples_block(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    df = inc.examples.df
    if df.height == 0:
        return
    doc.heading(f"What users saw{inc.cite('examples')}", level=3)
    note = (" User ids are pseudonymised and personal data in the quotes is redacted."
            if w.redact else "")
    doc.para(f"{df.height} affected events chosen at random (by a hash of the event id).{note}")
    doc.table(["time", "user", "request", "response"],
              [[_when(r["ts"]), w.user(r["user_id"]), w.text(r["input_text"], 160),
                w.text(r["output_text"], 240, request=r["input_text"])]
               for r in df.iter_rows(named=True)])


def section_root_cause(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    doc.heading("Root cause")
    s = inc.suspects
    if s is None or s.df.height == 0:
        doc.para("No declared or inferred change could be tested against the pattern.")
    else:
        top = s.df.row(0, named=True)
        doc.para(f"{w.text(top['explanation'], 2000)}{inc.cite('suspects')}")
        doc.table(["rank", "change", "kind", "feature", "versions", "at", "effect (points)",
                   "q", "verdict"],
                  [[r["rank"], r["change_id"], r["kind"], r["feature"],
                    f"{r['from_version'] or '?'} -> {r['to_version']}", _when(r["ts"]),
                    _effect(r), "" if r["q_value"] is None else f"{r['q_value']:.2g}",
                    r["verdict"]] for r in s.df.head(6).iter_rows(named=True)])
        doc.para("How suspects are scored and tested: see Methods in the appendix.")
    _clusters_block(doc, inc, w)
    _trends_block(doc, inc, w)


def _effect(r: dict[str, Any]) -> str:
    if r["effect"] is None:
        return ""
    return (f"{signed(100 * r['effect'])} [{signed(100 * r['ci_low'])}, "
            f"{signed(100 * r['ci_high'])}]")


def _clusters_block(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    if inc.clusters is None:
        return
    per = (inc.clusters.df.group_by("cluster_id", "title", "category", "size")
           .agg(pl.col("affected").sum()).sort(["size", "cluster_id"],
                                                 descending=[True, False]))
    doc.heading(f"Forms of the failure{inc.cite('clusters')}", level=3)
    doc.table(["cluster", "title", "category", "events", "of them affected"],
              [[r["cluster_id"], w.text(r["title"], 120), r["category"] or "", r["size"],
                r["affected"]] for r in per.head(12).iter_rows(named=True)])
    if "clusters" in w.charts:
        doc.image(w.charts["clusters"], "failure clusters per day")


def _trends_block(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    if inc.trends is None or "clusters" not in w.charts:
        return
    doc.heading(f"Failure patterns over time{inc.cite('trends')}", level=3)
    doc.image(w.charts["clusters"], "labelled events per day")


def section_why_not_caught(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    doc.heading("Why it was not caught earlier")
    f = inc.milestones.meta
    first = inc.milestone("first affected event")
    points = []
    affected = f.get("affected_events") or 0
    if affected:
        flagged = f.get("flagged_by_moderation") or 0
        ci = stats.wilson(flagged, affected)
        points.append(f"Guardrails: moderation flagged {_n(flagged)} of {_n(affected)} "
                      f"affected events ({100 * ci.estimate:.1f}%, 95% CI "
                      f"{100 * ci.low:.1f}-{100 * ci.high:.1f}%){inc.cite('milestones')}.")
        neg = f.get("with_negative_feedback") or 0
        ci = stats.wilson(neg, affected)
        complaints = f.get("complaints") or 0
        before = (f"{_count(w, f.get('users_before_first_complaint') or 0)} users were "
                  "affected before the first complaint on an affected event" if complaints
                  else "no one complained")
        points.append(f"User signals: {_n(neg)} of {_n(affected)} affected events got "
                      f"negative feedback in their conversation ({100 * ci.estimate:.1f}%, 95% "
                      f"CI {100 * ci.low:.1f}-{100 * ci.high:.1f}%); {_n(complaints)} "
                      f"complaints, {before}.")
    complaint = next((t for n, t, _ in first_signals(inc) if "complaint" in n), None)
    if complaint is not None:
        points.append(f"The first complaint came {_span(first, complaint)} after the first "
                      "affected event.")
    c = inc.change
    if c:
        declared = c["change_id"] and not str(c["change_id"]).startswith("inferred:")
        points.append("Change process: the change was " + (
            "declared in the change log" if declared else
            "not in the change log (inferred from the traffic)") + ", and nothing in the "
            "evidence shows an evaluation against this failure pattern before it shipped.")
    points += _alert_points(inc, w)
    if not points:
        points.append("The evidence holds no detection signal for these events.")
    doc.bullets(points)


def _alert_points(inc: PostmortemFacts, w: Writer) -> list[str]:
    """The earliest backtested alert without false alarms, and what a rollback when it
    fired would have spared (the playbook's detection gap and containment what-if)."""
    pb = inc.playbook
    if pb is None:
        return []
    m = pb.meta
    if not m.get("alert_rule"):
        return ["Monitoring: no simple alert rule (rate threshold or CUSUM) would have fired "
                f"without false alarms in the history before the onset{inc.cite('detection')}."]
    points = [f"Monitoring: an alert `{m['alert_rule']}` would have fired at "
              f"{_when(m.get('alert_fired_at'))}, {_after_onset(m.get('alert_delay_hours'))}, with "
              f"{_n(m.get('alert_false_alarms'))} false alarm(s) in the "
              f"{_n(m.get('alert_history_weeks'))} weeks before{inc.cite('detection')}; it is "
              f"written as a saved query in `alerts/{m.get('alert_query')}.sql`."]
    spared = m.get("users_spared_if_alert")
    if spared is not None:
        low, high = m.get("users_spared_if_alert_interval") or (None, None)
        events = m.get("events_spared_if_alert")
        points.append(f"Had the change been rolled back when that alert fired, about "
                      f"{estimate(spared, low, high)} users (95% interval) and "
                      f"{whole(events)} bad outputs "
                      f"would have been spared{inc.cite('containment')}.")
    return points


def section_whats_changing(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    doc.heading("What's changing")
    doc.para("Proposed actions; owners and dates to be agreed.")
    items = []
    c = inc.change
    if c:
        items.append(_fix_for(c))
    evals = w.out / "evals"
    items.append(f"Add the regression pack in {evals.name}/ (one or more cases per failure "
                 "form, from the affected events) to the checks every "
                 f"{c['kind'] if c else 'prompt, model, retrieval or release'} change must "
                 "pass before rollout.")
    s = inc.suspects
    pb = inc.playbook.meta if inc.playbook is not None else {}
    if pb.get("alert_rule"):
        items.append(f"Monitoring: adopt the alert in alerts/{pb['alert_query']}.sql "
                     f"({pb['alert_rule']}): backtested on this case it would have fired "
                     f"{_after_onset(pb.get('alert_delay_hours'))} with "
                     f"{_n(pb.get('alert_false_alarms'))} false alarm(s) before"
                     f"{inc.cite('detection')}.")
    elif s is not None and s.meta.get("onset_rate_before") is not None:
        before, after = s.meta["onset_rate_before"], s.meta["onset_rate_after"]
        items.append(f"Alert on the pattern rate{' in ' + c['feature'] if c else ''}: it rose "
                     f"from {100 * before:.2f}% to {100 * after:.2f}% at the onset; a "
                     "threshold between the two catches a repeat within the first hours.")
    f = inc.milestones.meta
    guard = guardrail_action(f.get("flagged_by_moderation") or 0, f.get("affected_events") or 0)
    if guard:
        items.append(guard + inc.cite("milestones"))
    items.append("Keep staged rollouts, with the pattern rate of the new version compared "
                 "with the old one at each stage before widening.")
    doc.bullets(items)


def guardrail_action(flagged: int, affected: int) -> str | None:
    """The guardrail action, worded from the share moderation flagged; None when it
    caught most of them (no action is owed).

    >>> print(guardrail_action(5, 618))  # doctest: +NORMALIZE_WHITESPACE
    Guardrails: add a check for this pattern to the output moderation rules: they flagged 5 of
    618 affected events (0.8%).
    >>> guardrail_action(600, 618) is None
    True
    """
    if not affected or flagged >= 0.5 * affected:
        return None
    return ("Guardrails: add a check for this pattern to the output moderation rules: they "
            f"flagged {whole(flagged)} of {whole(affected)} affected events "
            f"({percent(flagged, affected)}).")


def _after_onset(hours: Any) -> str:
    """A delay after the onset in words: minutes below an hour, never "0.0 h".

    >>> for h in (0.0, 0.5, 3.0, None):
    ...     print(_after_onset(h))
    in the same hour as the onset
    30 min after the onset
    3 h after the onset
    at an unknown time
    """
    if hours is None:
        return "at an unknown time"
    if abs(hours) * 60 < 1:
        return "in the same hour as the onset"
    side = "after" if hours > 0 else "before"
    size = abs(float(hours))
    if size < 1:
        return f"{size * 60:.0f} min {side} the onset"
    return f"{size:g} h {side} the onset" if size.is_integer() else f"{size:.1f} h {side} the onset"


def _fix_for(c: dict[str, Any]) -> str:
    return {
        "prompt": f"Prompt: keep {c['from_version']} until a revised prompt passes the "
                  "regression pack; review the prompt change process for safety cases.",
        "model": f"Model: pin {c['from_version']} until {c['to_version']} passes the "
                 "regression pack; watch the served model version for silent upgrades.",
        "retrieval": f"Retrieval: rebuild {c['to_version']} with the offending documents "
                     "filtered and access checks on retrieved content before it reaches "
                     "the model.",
        "release": f"Release: keep {c['from_version']} until {c['to_version']} passes the "
                   "regression pack and its actions are checked against the policy decision.",
    }.get(c["kind"], f"Revert or fix {c['change_id']} at the layer that caused it.")


def section_communication(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    doc.heading("Communication")
    doc.para("Drafts for a person to edit before sending (also in notifications/):")
    doc.heading("Affected users", level=3)
    doc.para(affected_user_notice(inc, w))
    doc.heading("Status page", level=3)
    doc.para(status_page_text(inc, w))
    if _personal_data(inc):
        doc.para("The failure exposed personal data: check the notification duties that "
                 "apply (data protection authority, affected data subjects) with legal.")


def _personal_data(inc: PostmortemFacts) -> bool:
    words = " ".join([inc.pattern_desc, *inc.labels]).lower()
    return any(k in words for k in ("pii", "leak", "private", "personal", "secret"))


def _feature_name(inc: PostmortemFacts) -> str:
    return f"the {inc.change['feature']} feature" if inc.change else "our AI features"


def _told(inc: PostmortemFacts, public: bool = False) -> str:

    e = expectation(" ".join([inc.pattern_desc, *inc.labels]))
    return e.told_public() if public else e.told


def affected_user_notice(inc: PostmortemFacts, w: Writer) -> str:
    """The seed playbook's note to affected users, filled from the findings."""
    m = inc.impact.meta
    fixed = inc.change["window"][1] if inc.change else None
    return (f"Between {_day(m['first_exposure'])} and {_day(m['last_exposure'])}, the "
            f"assistant in {_feature_name(inc)} {_told(inc)}. [Say what the correct "
            "information is, or what you need the user to do.] "
            + (f"We fixed the underlying issue on {_day(fixed)}" if fixed else
               "We are fixing the underlying issue")
            + ", and we have added checks so that it does not happen again. We are sorry.")


def status_page_text(inc: PostmortemFacts, w: Writer) -> str:
    """The seed playbook's status-page update, filled from the findings."""
    m = inc.impact.meta
    fixed = inc.change["window"][1] if inc.change else None
    state = f"It was resolved on {_when(fixed)}." if fixed else "We are working on a fix."
    return (f"We identified an issue with {_feature_name(inc)}: between "
            f"{_when(m['first_exposure'])} and {_when(m['last_exposure'])} the assistant "
            f"sometimes {_told(inc, public=True)} ({_count(w, m['users'])} users affected). "
            f"{state}")


def _day(value: Any) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, dt.datetime) else "unknown"


def section_appendix(doc: Document, inc: PostmortemFacts, w: Writer) -> None:
    doc.heading("Evidence appendix")
    doc.para("Files the case was built from (the sha256 is the file's identity):")
    doc.table(["id", "file", "sha256", "format", "rows loaded", "rows rejected"],
              [[r["evidence_id"], Path(str(r["path"])).name, r["sha256"], r["format"],
                r["rows_loaded"], r["rows_rejected"]]
               for r in inc.evidence.df.iter_rows(named=True)])
    methods = _methods(inc)
    if methods:
        doc.heading("Methods", level=3)
        doc.bullets(methods)
    doc.para("Findings cited above; each can be re-run with `case.rerun_finding(id)` and "
             "checked with `case.check_finding(id)`:")
    for row in _findings(inc, w):
        doc.heading(f"{row['finding_id']}: {w.text(row['title'], 200)}", level=3,
                    anchor=row["finding_id"])
        if row["note"]:
            doc.para(w.text(row["note"], 1000))
        fold = f"SQL and parameters of {row['finding_id']}"
        doc.code(row["sql"] or "-- no SQL", "sql", fold=fold)
        if row["params"] != "{}":
            doc.code(row["params"], "json", fold=fold)


def _methods(inc: PostmortemFacts) -> list[str]:
    """How the scored and estimated figures were computed (kept out of the body)."""
    out = []
    if inc.suspects is not None and inc.suspects.meta.get("scoring"):
        out.append(f"Suspect ranking{inc.cite('suspects')}: {inc.suspects.meta['scoring']}.")
    if inc.estimate is not None and inc.estimate.meta.get("method"):
        out.append(f"Sampled-review estimate{inc.cite('estimate')}: "
                   f"{inc.estimate.meta['method']}.")
    return out


def _findings(inc: PostmortemFacts, w: Writer) -> list[dict[str, Any]]:
    out = []
    for row in inc.recorded:
        r = dict(row)
        params = json.loads(r["params"] or "{}")
        if w.redact:
            params = _redact_params(params, w)
        r["params"] = dumps(params, sort_keys=True, indent=1, ensure_ascii=True)
        r["sql"] = (redact_text(r["sql"]) if w.redact else r["sql"]) or ""
        out.append(r)
    return out


def _redact_params(value: Any, w: Writer) -> Any:
    if isinstance(value, dict):
        return {k: _redact_params(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_params(v, w) for v in value]
    if isinstance(value, str):
        if value in w.user_ids:
            return w.user(value)
        return redact_text(value)
    return value


SECTIONS: list[Callable[[Document, PostmortemFacts, Writer], None]] = [
    section_summary, section_severity, section_timeline, section_impact, section_root_cause,
    section_why_not_caught, section_whats_changing, section_communication, section_appendix]


# =======================================================================================
# charts

def draw_charts(inc: PostmortemFacts, w: Writer) -> None:
    """timeline.png (pattern rate with change markers and the exposure window),
    impact.png (affected users, a panel per cohort dimension), clusters.png (cluster
    trends); drawn by :mod:`forensics.postmortem.charts`."""
    from forensics.postmortem import charts

    figures = {}
    if inc.series is not None and inc.series.df.height:
        figures["timeline"] = charts.timeline_figure(inc)
    if inc.cohorts:
        figures["impact"] = charts.impact_figure(inc, w.cells)
    if inc.clusters is not None:
        figures["clusters"] = charts.clusters_figure(inc, lambda t: w.text(str(t), 70))
    elif inc.trends is not None and inc.trends.df.height:
        figures["clusters"] = _trend_figure(inc)
    with _chart_style():
        for name, fig in figures.items():
            w.charts[name] = charts.save(fig, w.out / "charts" / f"{name}.png")


def _chart_style() -> Any:
    import matplotlib

    return matplotlib.rc_context({"font.size": 9, "svg.hashsalt": "forensics"})


def _trend_figure(inc: PostmortemFacts) -> Any:
    from matplotlib.figure import Figure

    assert inc.trends is not None
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.add_subplot()
    df = inc.trends.df
    for (label,), part in df.group_by("label", maintain_order=True):
        ax.plot(part["day"].to_list(), part["events"].to_list(), marker="o", ms=3, lw=1.2,
                label=str(label) + (" (the pattern)" if label in inc.labels else ""))
    ax.set_ylabel("labelled events per day")
    ax.set_ylim(bottom=0)
    ax.set_title("failure patterns over time (labels; no clustering run in the case)",
                 loc="left", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2,
              frameon=False)
    return fig


# =======================================================================================
# the post-mortem

class ReportResult(Result):
    kind = "report"


def postmortem(case: CaseHandle, path: str | Path, *, pattern: Pattern = None,
               change: str | None = None, redact: bool = True, min_cell: int = 5,
               evals: bool = True, evals_per_cluster: int = 5,
               title: str | None = None, force: bool = False) -> ReportResult:
    """Write the post-mortem to directory ``path``: ``postmortem.md`` and its HTML twin
    ``postmortem.html`` (images embedded), ``charts/*.png``,
    ``notifications/affected_users.md`` and ``notifications/status_page.md``, and the
    eval pack in ``evals/`` (unless ``evals=False``). Returns the files written with
    their sha256 and, in ``meta``, the headline numbers.

    ``pattern`` / ``change`` override the pattern and root cause (see :func:`gather`);
    ``redact=False`` keeps raw user ids and unredacted quotes; ``min_cell`` suppresses
    cohort cells of fewer users (0: none).

    A notification draft a person edited since the last run is kept: the new draft is
    written beside it (``affected_users.new.md``) and listed in ``meta["drafts_kept"]``,
    unless ``force=True`` (:func:`write_drafts`).

    >>> case.postmortem("out/", pattern="over_refusal", evals=False).meta["users"]
    258
    """
    if case.read_only:
        raise ReadOnlyCaseError("the report records its findings in the case",
                                hint="open the case for writing (not read_only)")
    if count_rows(case.con, "events") == 0:
        raise UsageError("no events in the case: there is nothing to report",
                         hint="load evidence first: case.load(...) / forensics load")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    triage = incidents(case, baselines=False).incidents() \
        if pattern is None and change is None else []
    first = triage[0] if triage else None
    inc = _gather_incident(case, first) if first else gather(case, pattern=pattern,
                                                              change=change)
    others = [(row, _gather_incident(case, row)) for row in triage[1:]]
    for facts in [inc, *(f for _, f in others)]:
        _attach_findings(case, facts)
    w = Writer(out=out, redact=redact, min_cell=min_cell, key=case_key(case.con),
               user_ids=set().union(*(_param_user_ids(case, f)
                                      for f in [inc, *(f for _, f in others)])))
    draw_charts(inc, w)
    if title is None and triage:
        title = "Post-mortem: " + "; ".join(
            f"{_families(r)}{' after ' + str(_likely(r)) if _likely(r) else ''}" for r in triage)
    doc = Document(title or _title(inc))
    if len(triage) > 1:
        section_incidents(doc, triage, w)
        doc.heading(f"Incident {triage[0]['incident_id']} (most severe)", 2)
    for section in SECTIONS:
        section(doc, inc, w)
    for row, facts in others:
        section_incident(doc, row, facts, w)
    files = [_write(out / "postmortem.md", doc.markdown(base=out)),
             _write(out / "postmortem.html", doc.html())]
    drafts = write_drafts(out / "notifications", {
        "affected_users.md": "# Notice to affected users (draft)\n\n"
                             + markdown_text(affected_user_notice(inc, w)) + "\n",
        "status_page.md": "# Status page update (draft)\n\n"
                          + markdown_text(status_page_text(inc, w)) + "\n"}, force=force)
    files += [d.path for d in drafts]
    files += sorted(w.charts.values())
    alert_sql = getattr(inc.playbook.detection, "alert_sql", None) if inc.playbook else None
    if alert_sql and inc.playbook.meta.get("alert_query"):
        files.append(_write(out / "alerts" / f"{inc.playbook.meta['alert_query']}.sql",
                            alert_sql))
    if evals:

        pack = export_evals(case, out / "evals", format="all",
                            pattern=inc.labels or inc.pattern,
                            change=inc.change["change_id"] if inc.change else None,
                            per_cluster=evals_per_cluster, redact=redact)
        files += [Path(p) for p in pack.df["path"].to_list()]
    df = pl.DataFrame({"path": [p.relative_to(out).as_posix() for p in files],
                       "bytes": [p.stat().st_size for p in files],
                       "sha256": [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]})
    m = inc.impact.meta
    meta = {"outdir": str(out), "pattern": inc.pattern_desc,
            "incidents": [{"incident_id": r["incident_id"], "severity": r["severity"],
                           "cause": _likely(r), "users": f.impact.meta["users"]}
                          for r, f in ([(first, inc)] if first else []) + others],
            "overall_severity": first["severity"] if first else None,
            "root_cause": inc.change["change_id"] if inc.change else None,
            "users": m["users"], "sessions": m["sessions"], "events": m["events"],
            "window": m.get("window"), "first_exposure": m["first_exposure"],
            "last_exposure": m["last_exposure"], "findings": sorted(set(inc.findings.values())),
            "redacted": redact, "min_cell": min_cell,
            "suspects": _top_suspects(inc), "playbook": _playbook_meta(inc),
            "drafts_kept": [{"kept": str(d.kept), "new": str(d.path)}
                            for d in drafts if d.kept is not None]}
    return ReportResult(df.sort("path"), title="post-mortem", meta=meta)


def _gather_incident(case: CaseHandle, row: dict[str, Any]) -> PostmortemFacts:
    """The facts of one incident of :func:`forensics.playbook.incidents.incidents`, its
    pattern named by its failure families (not by its SQL)."""
    facts = gather(case, pattern=row["pattern"], change=_likely(row))
    facts.pattern_desc = f"the {', '.join(row['families'])} failure family"
    return facts


def _likely(row: dict[str, Any]) -> str | None:
    """An incident's top suspect when it is a likely cause (else no root cause)."""
    return row["top_suspect"] if row.get("suspect_verdict") == "likely cause" else None


def _families(row: dict[str, Any]) -> str:
    return f"{', '.join(row['families'])} in {', '.join(row['features'])}"


def section_incidents(doc: Document, triage: list[dict[str, Any]], w: Writer) -> None:
    """Every incident of the case, most severe first; the overall severity is the highest
    of them (each incident has its own section with its cause, impact and timeline)."""
    doc.heading("Incidents in this case")
    doc.para(f"The case holds {len(triage)} distinct incidents (failure family x "
             f"feature x onset). Overall severity: **{triage[0]['severity']}**, the highest "
             "of them. Each is investigated on its own below.")
    doc.table(["incident", "pattern", "severity", "onset", "likely cause"],
              [[r["incident_id"], _families(r), r["severity"], _when(r["onset"]),
                _likely(r) or "not established"] for r in triage])


EACH_INCIDENT: list[Callable[[Document, PostmortemFacts, Writer], None]] = [
    section_summary, section_severity, section_timeline, section_impact, section_root_cause]


def section_incident(doc: Document, row: dict[str, Any], facts: PostmortemFacts,
                     w: Writer) -> None:
    """One further incident: its own summary, severity, timeline, impact and root cause,
    one heading level down (no charts: those show the most severe incident)."""
    sub = Document("")
    own = dataclasses.replace(w, charts={})
    for section in EACH_INCIDENT:
        section(sub, facts, own)
    doc.heading(f"Incident {row['incident_id']}: {_families(row)}", 2)
    for kind, value in sub.blocks:
        doc.blocks.append((kind, (value[0] + 1, *value[1:]) if kind == "heading" else value))


def _top_suspects(inc: PostmortemFacts, n: int = 3) -> list[dict[str, Any]]:
    """The first ``n`` ranked suspects, with their effect and explanation."""
    if inc.suspects is None or inc.suspects.df.is_empty():
        return []
    keep = ["rank", "change_id", "kind", "feature", "from_version", "to_version", "ts",
            "score", "effect", "ci_low", "ci_high", "q_value", "verdict", "explanation"]
    df = inc.suspects.df
    return df.select([c for c in keep if c in df.columns]).head(n).to_dicts()


def _playbook_meta(inc: PostmortemFacts) -> dict[str, Any]:
    """Severity, proposed alert and containment figures (empty without a playbook)."""
    return dict(inc.playbook.meta) if inc.playbook is not None else {}


def _title(inc: PostmortemFacts) -> str:
    where = f" in {inc.change['feature']} after {inc.change['change_id']}" if inc.change else ""
    return f"Post-mortem: {inc.pattern_desc}{where}"


def _pattern_words(inc: PostmortemFacts) -> str:
    if inc.labels:
        return f"the failure pattern {inc.pattern_desc}"
    return inc.pattern_desc


@dataclass
class Draft:
    path: Path                  # where this run's draft is
    kept: Path | None = None    # the edited draft left in place, if any


DRAFT_HASHES = ".written.json"


def write_drafts(folder: Path, drafts: dict[str, str], force: bool = False) -> list[Draft]:
    """Write each draft ``name -> text`` into ``folder`` unless a person edited it.

    What was written is remembered by its sha256 in ``folder/.written.json``. A file that
    no longer matches what was written (or that this function did not write) has been
    edited: it is kept, and the new text goes beside it as ``<stem>.new<suffix>``.
    ``force=True`` overwrites.

    >>> d = Path("drafts")
    >>> write_drafts(d, {"notice.md": "v1"})[0].kept is None
    True
    >>> _ = (d / "notice.md").write_text("v1, edited by a person")
    >>> [x.path.name for x in write_drafts(d, {"notice.md": "v2"})]
    ['notice.new.md']
    >>> (d / "notice.md").read_text()
    'v1, edited by a person'
    """
    index = folder / DRAFT_HASHES
    written: dict[str, str] = (json.loads(index.read_text(encoding="utf-8"))
                               if index.exists() else {})
    out = []
    for name, text in drafts.items():
        path = folder / name
        new = text.encode("utf-8")
        current = path.read_bytes() if path.exists() else None
        edited = (current is not None and current != new
                  and hashlib.sha256(current).hexdigest() != written.get(name))
        if edited and not force:
            beside = path.with_name(f"{path.stem}.new{path.suffix}")
            out.append(Draft(_write(beside, text), kept=path))
            continue
        _write(path, text)
        written[name] = hashlib.sha256(new).hexdigest()
        out.append(Draft(path))
    _write(index, json.dumps(dict(sorted(written.items())), indent=1) + "\n")
    return out


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def _attach_findings(case: CaseHandle, inc: PostmortemFacts) -> None:
    """The cited findings' stored SQL, parameters and times, for the appendix."""
    ids = sorted(set(inc.findings.values()))
    rows = frame(case.con, "SELECT finding_id, title, note, kind, sql, CAST(params AS VARCHAR) "
                 "AS params, created_at FROM findings WHERE list_contains($ids, finding_id) "
                 "ORDER BY finding_id", {"ids": ids}).to_dicts()
    inc.recorded = rows


def _param_user_ids(case: CaseHandle, inc: PostmortemFacts) -> set[str]:
    """String parameters of the cited findings that are user or session ids."""
    values = set()
    for r in inc.recorded:
        values |= set(_strings(json.loads(r["params"] or "{}")))
    if not values:
        return set()
    rows = frame(case.con, "SELECT DISTINCT v FROM unnest($v) t(v) WHERE v IN (SELECT user_id "
                 "FROM events) OR v IN (SELECT session_id FROM events)",
                 {"v": sorted(values)})
    return set(rows["v"].to_list()) if rows.height else set()


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


__all__ = ["SECTIONS", "Draft", "Writer", "postmortem", "write_drafts"]

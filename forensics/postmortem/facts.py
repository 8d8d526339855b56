"""What the case says about the incident: the facts a post-mortem states, each run as a
query and recorded as a finding (SQL, parameters, evidence hashes) so it can be re-run.

>>> facts = gather(case, "over_refusal")
>>> facts.impact.meta["users"], facts.change["change_id"]
(258, 'CHG-2041')

The pattern defaults to the labels whose rate rose most sharply (:func:`choose_pattern`),
the root cause to the top suspect, the affected events to the pattern's events that the
root cause's new version served in its exposure window (:func:`forensics.impact.exact.scope`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from forensics.cause.changes import TimelineResult, changes, interval
from forensics.cause.suspects import suspects
from forensics.core import stats
from forensics.core.db import frame, scalar
from forensics.core.errors import ForensicsError
from forensics.core.findings import record_once
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern, select
from forensics.impact.estimate import estimate
from forensics.impact.exact import (
    ImpactResult,
    ImpactScope,
    exposure,
    hit_feedback_sql,
    impact_in,
    scope,
)
from forensics.playbook.answers import playbook

COHORT_TABLES = ("plan", "locale", "region", "client_version", "tenant")
EXAMPLES = 5
CO_RISING_HOURS = 6          # labels whose onset is this close to the top one's join it


@dataclass
class PostmortemFacts:
    """The facts the post-mortem states, each one a recorded finding (``cite``)."""

    pattern: str                    # SQL condition over event_facts
    pattern_desc: str
    labels: list[str]
    change: dict[str, Any] | None   # impact.change_scope of the root cause
    suspects: Result | None
    scope: ImpactScope              # the affected events' condition
    impact: ImpactResult
    cohorts: dict[str, ImpactResult]
    series: Result | None
    milestones: Result
    clusters: Result | None
    trends: Result | None           # labels per day, when there are no clusters
    estimate: Result | None
    examples: Result
    evidence: Result
    findings: dict[str, str]        # what -> finding id
    playbook: Any = None            # playbook.PlaybookResult: severity, detection, what-if
    recorded: list[dict[str, Any]] = field(default_factory=list)  # their rows in `findings`

    def cite(self, what: str) -> str:
        fid = self.findings.get(what)
        return f" [{fid}]" if fid else ""

    def milestone(self, name: str) -> Any:
        rows = self.milestones.df.filter(pl.col("milestone") == name)
        return rows["ts"][0] if rows.height else None


def gather(case: CaseHandle, pattern: Pattern = None,
           change: str | None = None) -> PostmortemFacts:
    """Run the investigation's summary queries and record each as a finding.

    ``pattern``: a label, cluster id or SQL condition (default: the labels whose rate
    rose most sharply, see :func:`choose_pattern`; any bad signal when there are none);
    ``change``: the root-cause change id (default: the top suspect).
    """
    found: dict[str, str] = {}

    def keep(what: str, result: Result, title: str, note: str = "") -> Any:
        found[what] = record_once(case, result, title, note)
        return result

    cond, labels, desc = resolve_pattern(case, pattern, keep)
    suspects = _suspects(case, cond, keep)
    root = change or _top_change(suspects)
    sc = scope(case, cond, change=root)
    scope_ = sc.change
    total = keep("impact", impact_in(case, sc), "Affected users, sessions and events",
                 "exact distinct counts of the pattern's events served by the root-cause "
                 "change in its exposure window")
    if root:
        keep("exposure", exposure(case, sc), f"Users, sessions and events {root} served")
    cohorts = {b: keep(f"impact_{b}", impact_in(case, sc, by=b), f"Affected users by {b}")
               for b in _cohort_columns(case)}
    series = _series(case, cond, scope_, keep)
    analytics = _playbook(case, cond, root, keep)
    return PostmortemFacts(
        pattern=cond, pattern_desc=desc, labels=labels, change=scope_, suspects=suspects,
        scope=sc, impact=total, cohorts=cohorts, series=series,
        milestones=keep("milestones", milestones(case, sc), "PostmortemFacts milestones"),
        clusters=(clusters := _clusters(case, sc, keep)),
        trends=None if clusters is not None else _trends(case, keep),
        estimate=_estimate(case, cond, keep),
        examples=keep("examples", examples(case, sc), "Examples of affected events"),
        evidence=keep("evidence", evidence(case), "Evidence files"), findings=found,
        playbook=analytics)


def _playbook(case: CaseHandle, cond: str, root: str | None, keep: Keep) -> Any:
    """Severity, detection gap, containment what-if and incident timeline of the pattern
    (:func:`forensics.playbook.answers.playbook`), anchored on the same root cause; each recorded.
    None when the case cannot support them (say, no onset in too short a history)."""

    try:
        pb = playbook(case, cond, suspect=root or False)
    except ForensicsError:
        return None
    keep("severity", pb.severity, "Severity on the playbook matrix")
    keep("detection", pb.detection, "Detection gap: first signals and backtested alert rules")
    if pb.containment is not None:
        keep("containment", pb.containment, "What a rollback at an earlier time would have "
             "spared")
    keep("incident_timeline", pb.timeline, "PostmortemFacts timeline")
    return pb


Keep = Callable[..., Any]


def resolve_pattern(case: CaseHandle, pattern: Pattern = None,
                    keep: Keep | None = None) -> tuple[str, list[str], str]:
    """(SQL condition over ``event_facts`` with its values inlined, labels, description) of
    the incident's pattern: any value :func:`forensics.core.selection.select` takes, or by
    default the labels :func:`choose_pattern` picks (any bad signal when there are none).
    ``keep`` records the candidate table as a finding."""
    if pattern is None:
        chosen = choose_pattern(case)
        if chosen.df.height and keep is not None:
            keep("patterns", chosen, "Candidate patterns (labels by the sharpness of their "
                 "rise)")
        if not chosen.meta["chosen"]:
            return "is_bad", [], "a bad signal (an error, a moderation flag or negative feedback)"
        pattern = sorted(chosen.meta["chosen"])
    sel = select(case, pattern)
    if sel.kind == "label":
        return sel.inline(), sel.labels, sel.values[0]
    return sel.inline(), sel.labels, sel.description


def choose_pattern(case: CaseHandle, bucket: str = "1h") -> Result:
    """Labels (not reviewer verdicts) ranked by the sharpness of their rise: for each, the
    hourly rate in the features where it occurs and its onset (:func:`stats.onset`). The
    top label is chosen, with the labels that rose within :data:`CO_RISING_HOURS` of it
    at least half as sharply (the same incident seen by several detectors)."""
    sql = """
WITH lab AS (
    SELECT DISTINCT l.label, e.feature, time_bucket(CAST($bucket AS INTERVAL), e.ts) AS b,
           l.event_id
    FROM labels l JOIN events e USING (event_id)
    WHERE coalesce(l.source, '') <> 'reviewer' AND e.ts IS NOT NULL
), feats AS (SELECT DISTINCT label, feature FROM lab),
per_feature AS (
    SELECT feature, time_bucket(CAST($bucket AS INTERVAL), ts) AS b, count(*) AS n
    FROM events WHERE feature IN (SELECT feature FROM feats) AND ts IS NOT NULL GROUP BY ALL
), tot AS (SELECT f.label, p.b, sum(p.n) AS n FROM feats f JOIN per_feature p USING (feature)
           GROUP BY ALL),
bad AS (SELECT label, b, count(DISTINCT event_id) AS bad FROM lab GROUP BY ALL)
SELECT tot.label, tot.b AS bucket, CAST(tot.n AS BIGINT) AS n,
       CAST(coalesce(bad.bad, 0) AS BIGINT) AS bad
FROM tot LEFT JOIN bad USING (label, b) ORDER BY tot.label, tot.b"""
    params = {"bucket": _interval(bucket)}
    cube = frame(case.con, sql, params)
    rows = []
    for (label,), part in cube.group_by("label", maintain_order=True):
        o = stats.onset(part["bad"].to_numpy(), part["n"].to_numpy())
        if o is None:
            continue
        rows.append({"label": label, "onset": part["bucket"][o.index], "rate_before": o.before,
                     "rate_after": o.after, "llr": o.llr if not math.isnan(o.llr)
                     else o.after - o.before, "events": int(part["bad"].sum())})
    schema: dict[str, Any] = {"label": pl.String, "onset": pl.Datetime("us"),
                              "rate_before": pl.Float64, "rate_after": pl.Float64,
                              "llr": pl.Float64, "events": pl.Int64}
    df = pl.DataFrame(rows, schema=schema).sort(["llr", "label"], descending=[True, False])
    if df.height:
        top = df.row(0, named=True)
        near = (pl.col("onset") - top["onset"]).abs() <= dt.timedelta(hours=CO_RISING_HOURS)
        df = df.with_columns(chosen=(near & (pl.col("llr") >= top["llr"] / 2))
                             | (pl.col("label") == top["label"]))
    else:
        df = df.with_columns(chosen=pl.lit(False))
    return Result(df, sql=sql, params=params, title="candidate patterns",
                  meta={"chosen": df.filter(pl.col("chosen"))["label"].to_list()})


def _interval(bucket: str) -> str:

    return interval(bucket)


def _suspects(case: CaseHandle, cond: str, keep: Keep) -> Result | None:
    try:
        result = suspects(case, cond)
    except ForensicsError:
        return None
    if result.df.height == 0:
        return None
    return keep("suspects", result, "Ranked suspects",
                "candidate changes around the onset, with their contrast, alignment and "
                "dose-response")


def _top_change(suspects: Result | None) -> str | None:
    if suspects is None or suspects.df.height == 0:
        return None
    return str(suspects.df["change_id"][0])


def _cohort_columns(case: CaseHandle) -> list[str]:
    """The cohort columns the case has values for."""
    present = []
    for b in COHORT_TABLES:
        if scalar(case.con, f"SELECT count(*) FROM (SELECT 1 FROM event_facts WHERE {b} IS "
                            "NOT NULL LIMIT 1)"):
            present.append(b)
    return present


def _series(case: CaseHandle, cond: str, scope_: dict[str, Any] | None,
            keep: Keep) -> Result | None:
    """The pattern's rate per bucket in the root-cause feature (all traffic without one),
    with Wilson intervals, and the change markers of that feature."""

    feature = scope_["feature"] if scope_ else None
    span = frame(case.con, "SELECT min(ts) AS lo, max(ts) AS hi FROM events").row(0)
    if span[0] is None:
        return None
    bucket = "1h" if (span[1] - span[0]) <= dt.timedelta(days=8) else "6h"
    sql = f"""
SELECT time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket,
       count(*) FILTER (WHERE {cond}) AS count, count(*) AS n,
       count(*) FILTER (WHERE {cond}) / count(*) AS value
FROM event_facts
WHERE ts IS NOT NULL AND ($feature IS NULL OR feature = $feature)
GROUP BY ALL ORDER BY bucket"""
    params = {"bucket": _interval(bucket), "feature": feature}
    df = frame(case.con, sql, params)
    _, low, high = stats.wilson_arrays(df["count"].to_numpy(), df["n"].to_numpy())
    df = df.with_columns(pl.Series("low", low), pl.Series("high", high))
    marks = changes(case, rollout=False).df
    if feature is not None and marks.height:
        marks = marks.filter(pl.col("feature") == feature)
    result = TimelineResult(df, markers=marks, sql=sql, params=params,
                            title=f"pattern rate per {bucket}"
                                  + (f" in {feature}" if feature else ""),
                            meta={"metric": "pattern rate", "bucket": bucket})
    return keep("series", result, "Pattern rate over time")


def milestones(case: CaseHandle, sc: ImpactScope) -> Result:
    """When things happened, from the affected events and their feedback: first and
    last affected event, first negative feedback, first complaint, first moderation
    flag; and how many of the affected events the guardrails and the users flagged.
    ``sc``: :func:`forensics.impact.exact.scope` of the affected events."""

    sql = f"""
WITH hit AS (SELECT event_id, trace_id, user_id, ts, is_flagged
             FROM event_facts WHERE {sc.condition}),
fbh AS ({hit_feedback_sql("hit")}),
fb AS (SELECT DISTINCT feedback_row, ts, negative, complaint FROM fbh),
neg AS (SELECT DISTINCT hit_id FROM fbh WHERE negative),
firsts AS (   -- named apart from the playbook's first signals (any pattern event since
             -- the onset): these are on the affected events only
    SELECT 'first affected event' AS milestone, min(ts) AS ts FROM hit
    UNION ALL SELECT 'last affected event', max(ts) FROM hit
    UNION ALL SELECT 'first moderation flag on an affected event',
                     min(ts) FILTER (WHERE is_flagged) FROM hit
    UNION ALL SELECT 'first negative feedback on an affected event',
                     min(ts) FILTER (WHERE negative) FROM fb
    UNION ALL SELECT 'first complaint on an affected event',
                     min(ts) FILTER (WHERE complaint) FROM fb
)
SELECT milestone, ts,
       (SELECT count(*) FROM hit) AS affected_events,
       (SELECT count(*) FILTER (WHERE is_flagged) FROM hit) AS flagged_by_moderation,
       (SELECT count(*) FROM neg) AS with_negative_feedback,
       (SELECT count(*) FILTER (WHERE complaint) FROM fb) AS complaints,
       (SELECT count(DISTINCT user_id) FROM hit h WHERE h.ts < (SELECT min(ts) FROM fb
            WHERE complaint)) AS users_before_first_complaint
FROM firsts ORDER BY ts NULLS LAST, milestone"""
    df = frame(case.con, sql, sc.params)
    first = df.row(0, named=True) if df.height else {}
    meta = {k: first.get(k) for k in ("affected_events", "flagged_by_moderation",
                                      "with_negative_feedback", "complaints",
                                      "users_before_first_complaint")}
    return Result(df.select("milestone", "ts"), sql=sql, params=sc.params,
                  title="incident milestones", meta=meta)


def _clusters(case: CaseHandle, sc: ImpactScope, keep: Keep) -> Result | None:
    """Failure clusters of the latest clustering run: size, and how many of their events
    are among the affected ones, with their daily counts (for the trend chart)."""
    if not scalar(case.con, "SELECT count(*) FROM clusters"):
        return None
    sql = f"""
WITH run AS (
    SELECT coalesce((SELECT run_id FROM runs WHERE stage = 'cluster'
                     ORDER BY created_at DESC, run_id DESC LIMIT 1),
                    (SELECT max(run_id) FROM clusters)) AS run_id
), members AS (
    SELECT m.cluster_id, e.event_id, e.ts, e.event_id IN (
               SELECT event_id FROM event_facts WHERE {sc.condition}) AS affected
    FROM cluster_members m JOIN events e USING (event_id)
    WHERE m.run_id = (SELECT run_id FROM run)
)
SELECT c.cluster_id, c.title, c.category, c.size, date_trunc('day', m.ts) AS day,
       count(*) AS events, count(*) FILTER (WHERE m.affected) AS affected
FROM clusters c JOIN members m USING (cluster_id)
WHERE c.run_id = (SELECT run_id FROM run)
GROUP BY ALL ORDER BY c.size DESC, c.cluster_id, day"""
    df = frame(case.con, sql, sc.params)
    if df.height == 0:
        return None
    return keep("clusters", Result(df, sql=sql, params=sc.params, title="failure clusters"),
                "Failure clusters and their daily counts")


def _trends(case: CaseHandle, keep: Keep, top: int = 6) -> Result | None:
    """Events per day of the most frequent labels (not reviewer verdicts)."""
    sql = """
WITH top AS (SELECT label FROM labels WHERE coalesce(source, '') <> 'reviewer'
             GROUP BY label ORDER BY count(*) DESC, label LIMIT $top)
SELECT l.label, date_trunc('day', e.ts) AS day, count(DISTINCT l.event_id) AS events
FROM labels l JOIN events e USING (event_id)
WHERE l.label IN (SELECT label FROM top) AND coalesce(l.source, '') <> 'reviewer'
GROUP BY ALL ORDER BY l.label, day"""
    df = frame(case.con, sql, {"top": top})
    if df.height == 0:
        return None
    return keep("trends", Result(df, sql=sql, params={"top": top}, title="labels per day"),
                "Labelled events per day")


def _estimate(case: CaseHandle, cond: str, keep: Keep) -> Result | None:
    """The sampled-review estimate, when reviewers judged some of the pattern's events."""
    has = scalar(case.con, f"SELECT count(*) FROM event_facts WHERE ({cond}) AND event_id IN "
                           "(SELECT event_id FROM labels WHERE source = 'reviewer')")
    if not has:
        return None
    return keep("estimate", estimate(case, cond),
                "Truly affected users and events, estimated from the sampled review")


def examples(case: CaseHandle, sc: ImpactScope, n: int = EXAMPLES) -> Result:
    """A few affected events, chosen by a hash of their id (the same every time), with
    the user's request (from the parent span for a tool call) and what they got."""
    sql = f"""
SELECT e.event_id, e.ts, e.user_id, e.feature, e.kind, e.name,
       coalesce(e.input_text, p.input_text) AS input_text, e.output_text
FROM (SELECT * FROM event_facts WHERE {sc.condition}) e
LEFT JOIN events p ON p.span_id = e.parent_id AND p.trace_id = e.trace_id
ORDER BY hash(e.event_id), e.event_id
LIMIT {int(n)}"""
    return Result(frame(case.con, sql, sc.params), sql=sql, params=sc.params,
                  title="examples")


def evidence(case: CaseHandle) -> Result:
    sql = ("SELECT evidence_id, path, sha256, format, target, rows_loaded, rows_rejected "
           "FROM evidence ORDER BY evidence_id")
    return Result(frame(case.con, sql), sql=sql, title="evidence files")

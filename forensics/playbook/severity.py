"""Severity triage on the playbook's matrix: critical (respond within 15 minutes), high (1
hour), medium (4 hours), low (24 hours), decided from the evidence by a readable table of
rules evaluated in order: the first rule whose conditions all hold decides.

>>> s = case.severity("over_refusal")
>>> s.meta["level"], s.meta["rule"], s.meta["respond_within"]
('critical', 'major-disruption', '15 minutes')

The rules are plain data (a list of tables), so a team can keep its own matrix in TOML or
YAML and pass it as ``rules="severity.toml"``::

    [[rule]]
    name = "harm-or-exposure-at-scale"
    level = "critical"
    category = ["data leak", "harmful output", "unauthorized action"]
    user_visible = true
    min_users = 10
    why = "private data, harmful output or unauthorized actions reached many users"

Conditions (all optional): ``category`` (any of), ``user_visible``, ``ongoing``,
``min_users``, ``min_user_share``, ``min_events``, ``min_event_share``, ``min_sessions``,
``min_features``, ``min_tenants``, ``min_hours``. The evidence they are tested on is in
``meta['evidence']``; the result says which rule decided and shows every rule's outcome.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import polars as pl

from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern
from forensics.playbook.episode import EpisodeResult, episode
from forensics.playbook.milestones import recorded, to_utc

LEVELS = {"critical": "15 minutes", "high": "1 hour", "medium": "4 hours", "low": "24 hours"}
RESPONSE_MINUTES = {"critical": 15, "high": 60, "medium": 240, "low": 1440}

# The seed playbook's categories, most severe first, and the words that name them in
# detector labels, cluster categories and guardrail categories.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "data leak": ("leak", "pii", "private", "secret", "credential", "personal", "privacy",
                  "system_prompt", "api_key", "exposure"),
    "harmful output": ("harm", "toxic", "hate", "harass", "violen", "self_harm", "self-harm",
                       "sexual", "dangerous", "illegal", "jailbreak", "unsafe", "abuse"),
    "unauthorized action": ("unauthorized", "unauthorised", "policy_violation", "forbidden",
                            "tool_misuse", "unapproved"),
    "misinformation": ("hallucinat", "ungrounded", "misinformation", "fabricat", "factual",
                       "unsupported", "wrong_answer"),
    "capability loss": ("refus", "outage", "error", "timeout", "unavailable", "empty",
                        "capability"),
    "degradation": ("malformed", "truncat", "wrong_language", "language", "latency", "quality",
                    "format", "negative", "degrad", "tool_error"),
}
HIGH_HARM = ("data leak", "harmful output", "unauthorized action")

DEFAULT_RULES: list[dict[str, Any]] = [
    {"name": "harm-or-exposure-ongoing", "level": "critical", "category": list(HIGH_HARM),
     "user_visible": True, "ongoing": True, "min_users": 1,
     "why": "users are still being shown private data or harmful output, or the agent is "
            "still acting without authorization"},
    {"name": "harm-or-exposure-at-scale", "level": "critical", "category": list(HIGH_HARM),
     "user_visible": True, "min_users": 10,
     "why": "private data, harmful output or unauthorized actions reached many users"},
    {"name": "major-disruption", "level": "critical", "min_user_share": 0.25,
     "why": "a quarter or more of active users were affected"},
    {"name": "harm-or-exposure", "level": "high", "category": list(HIGH_HARM),
     "min_users": 1, "why": "private data, harmful output or an unauthorized action reached "
                            "a user"},
    {"name": "significant-impact", "level": "high", "min_user_share": 0.05,
     "why": "significant impact: 5 % or more of active users affected"},
    {"name": "ongoing-at-scale", "level": "high", "ongoing": True, "min_users": 100,
     "why": "still ongoing and already affecting many users"},
    {"name": "visible-failures", "level": "medium", "user_visible": True, "min_users": 10,
     "why": "moderate impact that users saw, with workarounds"},
    {"name": "minor", "level": "low", "why": "minor issue, minimal impact"},
]
CONDITIONS = {"category", "user_visible", "ongoing", "min_users", "min_user_share",
              "min_events", "min_event_share", "min_sessions", "min_features", "min_tenants",
              "min_hours"}
_EVIDENCE_KEY = {"min_users": "affected_users", "min_user_share": "user_share",
                 "min_events": "affected_events", "min_event_share": "event_share",
                 "min_sessions": "affected_sessions", "min_features": "features_touched",
                 "min_tenants": "tenants_touched", "min_hours": "duration_hours"}

EVIDENCE_SQL = """
WITH w AS (
    SELECT * FROM event_facts WHERE ts >= $start AND ts < $end
), p AS (
    SELECT *, event_id IN (SELECT event_id FROM moderations WHERE flagged
                           AND lower(coalesce(action, '')) IN ('block', 'blocked', 'filter',
                               'filtered', 'redact', 'redacted', 'replace', 'replaced'))
              OR lower(coalesce(kind, '')) IN ('retriever', 'retrieval', 'embedding',
                                               'reranker', 'guardrail') AS hidden
    FROM w WHERE coalesce({cond}, false)
      AND ($features IS NULL OR list_contains($features, coalesce(feature, '(none)')))
)
SELECT (SELECT count(DISTINCT user_id) FROM p) AS affected_users,
       (SELECT count(DISTINCT session_id) FROM p) AS affected_sessions,
       (SELECT count(*) FROM p) AS affected_events,
       (SELECT count(*) FROM p WHERE NOT hidden) AS visible_events,
       (SELECT count(DISTINCT user_id) FROM w) AS active_users,
       (SELECT count(*) FROM w) AS window_events,
       (SELECT list(DISTINCT feature ORDER BY feature) FROM p) AS features,
       (SELECT count(DISTINCT tenant) FROM p) AS tenants_touched,
       (SELECT list(DISTINCT plan ORDER BY plan) FROM p) AS plans,
       (SELECT count(*) FROM p WHERE is_error) AS errors,
       (SELECT min(ts) FROM p) AS first_ts, (SELECT max(ts) FROM p) AS last_ts"""

SIGNALS_SQL = """
WITH p AS (SELECT event_id, labels, flagged_categories FROM event_facts
           WHERE ts >= $start AND ts < $end AND coalesce({cond}, false)
             AND ($features IS NULL OR list_contains($features, coalesce(feature, '(none)'))))
SELECT 'label' AS source, label AS name, count(*) AS events
FROM (SELECT unnest(labels) AS label FROM p) GROUP BY ALL
UNION ALL
SELECT 'guardrail', category, count(*)
FROM (SELECT unnest(flagged_categories) AS category FROM p) GROUP BY ALL
UNION ALL
SELECT 'cluster', coalesce(c.category, c.title), count(*)
FROM cluster_members m JOIN clusters c USING (cluster_id, run_id)
WHERE m.event_id IN (SELECT event_id FROM p)
  AND m.run_id = coalesce((SELECT run_id FROM runs WHERE stage = 'cluster'
                           ORDER BY created_at DESC LIMIT 1), (SELECT max(run_id) FROM clusters))
GROUP BY ALL"""


SeverityRules = str | Path | list[dict[str, Any]] | None   # a TOML/YAML file or the rows


class SeverityResult(Result):
    """Every rule with whether it matched and why not (``.df``); the level, the deciding
    rule, the response time and the evidence in ``meta``."""

    kind = "severity"

    def to_markdown(self, max_rows: int = 50) -> str:
        m = self.meta
        head = (f"**Severity: {m['level']}** (respond within {m['respond_within']}), "
                f"rule `{m['rule']}`: {m['why']}.\n\n{m['reason']}\n\n")
        return head + super().to_markdown(max_rows)


def load_rules(rules: str | Path | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The rule table: the default matrix, a list of dicts, or a TOML (``[[rule]]``) /
    YAML (a list, or ``rule:`` / ``rules:``) file. Checked before use."""
    if rules is None:
        table = DEFAULT_RULES
    elif isinstance(rules, (str, Path)):
        path = Path(rules)
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data: Any = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
        table = data if isinstance(data, list) else (data.get("rule") or data.get("rules"))
        if not isinstance(table, list):
            raise UsageError(f"{path} holds no list of rules",
                             hint="TOML: [[rule]] tables; YAML: a list of mappings")
    else:
        table = list(rules)
    for i, rule in enumerate(table):
        unknown = set(rule) - CONDITIONS - {"name", "level", "why"}
        if unknown or rule.get("level") not in LEVELS:
            raise UsageError(f"severity rule {i + 1} ({rule.get('name', '?')}) is not valid: "
                             + (f"unknown keys {sorted(unknown)}" if unknown else
                                f"level must be one of {', '.join(LEVELS)}"),
                             hint=f"conditions: {', '.join(sorted(CONDITIONS))}")
        for cat in rule.get("category") or []:
            if cat not in CATEGORIES:
                raise UsageError(f"severity rule {rule.get('name', i + 1)}: unknown category "
                                 f"{cat!r}", hint=f"one of {', '.join(CATEGORIES)}")
    return [{"name": r.get("name") or f"rule-{i + 1}", **r} for i, r in enumerate(table)]


def categorize(names: dict[str, int]) -> dict[str, int]:
    """Signal names (labels, guardrail or cluster categories) -> events per seed category.

    >>> categorize({"pii_leak": 12, "over_refusal": 3, "ok": 1})
    {'data leak': 12, 'capability loss': 3}
    """
    out: dict[str, int] = {}
    for name, count in names.items():
        text = str(name).lower().replace(" ", "_")
        for cat, words in CATEGORIES.items():
            if text == cat.replace(" ", "_") or any(w in text for w in words):
                out[cat] = out.get(cat, 0) + count
                break
    return out


def severity(case: CaseHandle, pattern: Pattern = None, *, category: str | None = None,
             rules: SeverityRules = None,
             window: tuple[Any, Any] | None = None, bucket: str = "1h",
             min_category_share: float = 0.1, ep: EpisodeResult | None = None) -> SeverityResult:
    """Classify the incident of a pattern on the seed playbook's severity matrix.

    Evidence, over the incident window (``window``; default from the onset to the end of
    the exposure, see :func:`forensics.playbook.episode.episode`) and in the features where the
    pattern rose (``features_touched``; all features when none did):
    category (``category=``, else the most severe seed category making up at least
    ``min_category_share`` of the pattern events' labels, guardrail flags and clusters;
    errors read as capability loss), affected users / sessions / events and their share of
    the window's active users and traffic, features and tenants touched, whether users
    saw it (not blocked by a guardrail, not an internal span), whether it is still
    ongoing, and how long it lasted. The first rule of ``rules`` whose conditions all hold
    decides the level.

    >>> case.severity("status = 'error'", category="capability loss").meta["level"]
    'high'
    """
    table = load_rules(rules)
    if category is not None and category not in CATEGORIES:
        raise UsageError(f"unknown category {category!r}", hint=f"one of {', '.join(CATEGORIES)}")
    ep = ep or episode(case, pattern, bucket=bucket)
    marks = recorded(case)
    start, end, end_source = _window(ep, window)
    touched = ep.meta.get("features_touched") or ([ep.feature] if ep.feature else None)
    params = {**ep.pattern.params, "start": start, "end": end, "features": touched}
    sql = EVIDENCE_SQL.format(cond=ep.pattern.cond)
    ev = frame(case.con, sql, params).row(0, named=True)
    signals = frame(case.con, SIGNALS_SQL.format(cond=ep.pattern.cond), params)
    evidence = _evidence(ev, signals, ep, marks, category, min_category_share, start, end,
                         end_source)
    rows = [_evaluate(i + 1, rule, evidence) for i, rule in enumerate(table)]
    deciding = next((r for r in rows if r["matched"]), None)
    if deciding is None:
        raise UsageError("no severity rule matched",
                         hint="end the rule table with a rule without conditions")
    level = deciding["level"]
    warnings = []
    if ep.onset is None:
        warnings.append("no onset: the window is the whole history, so background "
                        "occurrences of the pattern count as the incident")
    if evidence["active_users"] < stats.SMALL_N or evidence["affected_events"] < stats.SMALL_N:
        warnings.append(f"small sample: {evidence['affected_events']} pattern events, "
                        f"{evidence['active_users']} active users")
    meta = {"level": level, "respond_within": LEVELS[level], "warnings": warnings,
            "respond_within_minutes": RESPONSE_MINUTES[level], "rule": deciding["rule"],
            "why": deciding["why"], "reason": _reason(deciding, evidence),
            "evidence": evidence, **_response(marks, level)}
    df = pl.DataFrame(rows, schema={"order": pl.Int64, "rule": pl.String, "level": pl.String,
                                    "matched": pl.Boolean, "conditions": pl.String,
                                    "failed": pl.String, "why": pl.String})
    return SeverityResult(df, sql=sql, params=params, meta=meta,
                          title=f"severity: {ep.pattern.desc}")


def _window(ep: EpisodeResult,
            window: tuple[Any, Any] | None) -> tuple[dt.datetime, dt.datetime, str]:

    if window is not None:
        return to_utc(window[0]), to_utc(window[1]), "given"
    return ep.onset or ep.meta["data_start"], ep.meta["end"], ep.meta["end_source"]


def _evidence(ev: dict[str, Any], signals: pl.DataFrame, ep: EpisodeResult,
              marks: dict[str, dt.datetime], category: str | None, min_share: float,
              start: dt.datetime, end: dt.datetime, end_source: str) -> dict[str, Any]:
    names = {f"{r['source']}:{r['name']}": r["events"] for r in signals.iter_rows(named=True)}
    by_cat = categorize({k.split(":", 1)[1]: v for k, v in names.items()})
    if ev["errors"]:
        by_cat["capability loss"] = max(by_cat.get("capability loss", 0), ev["errors"])
    total = max(ev["affected_events"], 1)
    shares = {c: round(v / total, 4) for c, v in by_cat.items()}
    if category is None:
        present = [c for c in CATEGORIES if shares.get(c, 0) >= min_share]
        category = present[0] if present else "degradation"
        source = "signals of the pattern events" if present else "default (no signal named it)"
    else:
        source = "given"
    contained = ep.meta.get("contained_at") is not None or \
        any(k in marks for k in ("contained", "mitigated", "resolved"))
    return {
        "category": category, "category_source": source, "category_shares": shares,
        "signals": names, "window_start": start, "window_end": end,
        "window_end_source": end_source,
        "affected_users": ev["affected_users"], "affected_sessions": ev["affected_sessions"],
        "affected_events": ev["affected_events"], "visible_events": ev["visible_events"],
        "active_users": ev["active_users"], "window_events": ev["window_events"],
        "user_share": round(ev["affected_users"] / ev["active_users"], 4)
        if ev["active_users"] else 0.0,
        "event_share": round(ev["affected_events"] / ev["window_events"], 4)
        if ev["window_events"] else 0.0,
        "features": ev["features"] or [], "features_touched": len(ev["features"] or []),
        "tenants_touched": ev["tenants_touched"], "plans": ev["plans"] or [],
        "user_visible": ev["visible_events"] > 0,
        "ongoing": bool(ep.meta.get("ongoing")) and not contained,
        "duration_hours": round((end - start).total_seconds() / 3600, 2),
        "onset": ep.onset, "baseline_rate": ep.meta.get("baseline_rate")}


def _evaluate(order: int, rule: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    """Test one rule's conditions on the evidence; say which failed and with what value."""
    checks, failed = [], []
    for key in sorted(set(rule) & CONDITIONS):
        want = rule[key]
        if key == "category":
            have, ok, text = ev["category"], ev["category"] in want, f"category in {list(want)}"
        elif key in ("user_visible", "ongoing"):
            have = ev[key]
            ok, text = bool(have) == bool(want), f"{key} = {str(bool(want)).lower()}"
        else:
            have = ev[_EVIDENCE_KEY[key]]
            ok, text = have >= want, f"{_EVIDENCE_KEY[key]} >= {want:g}"
        checks.append(text)
        if not ok:
            failed.append(f"{text} (is {have})")
    return {"order": order, "rule": rule["name"], "level": rule["level"],
            "matched": not failed, "conditions": "; ".join(checks) or "always",
            "failed": "; ".join(failed) or None, "why": rule.get("why", "")}


def _reason(rule: dict[str, Any], ev: dict[str, Any]) -> str:
    pct = 100 * ev["user_share"]
    return (f"{ev['category']} ({ev['category_source']}); {ev['affected_users']} users "
            f"({pct:.2g}% of {ev['active_users']} active), {ev['affected_sessions']} sessions, "
            f"{ev['affected_events']} events from {ev['window_start']:%Y-%m-%d %H:%M} to "
            f"{ev['window_end']:%Y-%m-%d %H:%M} ({ev['window_end_source']}); features: "
            f"{', '.join(map(str, ev['features'])) or 'none'}; "
            f"{'seen by users' if ev['user_visible'] else 'not seen by users'}; "
            f"{'still ongoing' if ev['ongoing'] else 'not ongoing'}. Decided by rule "
            f"{rule['rule']} ({rule['conditions']}).")


def _response(marks: dict[str, dt.datetime], level: str) -> dict[str, Any]:
    """Time from detection to the first response step, against the level's target."""
    detected = marks.get("detected")
    steps = [marks[k] for k in ("acknowledged", "escalated", "contained", "mitigated")
             if k in marks and detected is not None and marks[k] >= detected]
    if detected is None or not steps:
        return {"responded_in_minutes": None, "response_within_target": None}
    minutes = round((min(steps) - detected).total_seconds() / 60, 1)
    return {"responded_in_minutes": minutes,
            "response_within_target": minutes <= RESPONSE_MINUTES[level]}

"""The metrics that timelines and comparisons speak about, as SQL over ``event_facts``.

>>> metric("refusal_rate").kind
'rate'
>>> metric("label:pii_leak", index=0).params
{'m0': 'pii_leak'}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from forensics.core.errors import UsageError

REFUSAL = ("list_has_any(labels, ['refusal', 'over_refusal']) "
           "OR coalesce(finish_reason IN ('content_filter', 'refusal'), false)")
RATES = {
    "bad_rate": "is_bad",
    "error_rate": "is_error",
    "refusal_rate": REFUSAL,
    "flag_rate": "is_flagged",
    "moderation_flags": "is_flagged",
    "negative_feedback": "negative_feedback",
}
VALUES = {   # name -> (statistic, SQL value)
    "latency_p50": ("0.5", "duration_ms"),
    "latency_p95": ("0.95", "duration_ms"),
    "latency_mean": ("mean", "duration_ms"),
    "tokens": ("mean", "coalesce(input_tokens, 0) + coalesce(output_tokens, 0)"),
    "input_tokens": ("mean", "input_tokens"),
    "output_tokens": ("mean", "output_tokens"),
    "cost": ("mean", "cost_usd"),
}
TOTALS = {"volume": "count(*)", "cost_total": "sum(cost_usd)",
          "tokens_total": "sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))"}
DEFAULT_COMPARE = ("bad_rate", "error_rate", "refusal_rate", "flag_rate", "negative_feedback",
                   "latency_p50", "latency_p95", "tokens", "cost")
SEGMENTS = ("feature", "locale", "plan", "region", "client_version", "tenant")
CANONICAL = {"feature", "kind", "name", "provider", "model", "response_model", "prompt_name",
             "prompt_version", "retrieval_version", "release", "status", "finish_reason",
             "plan", "locale", "region", "tenant", "client_version", "user_id", "session_id",
             "tool_name"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Metric:
    """``kind``: rate (a condition), value (a mean or quantile of ``sql``), or total."""

    name: str
    kind: str
    sql: str
    stat: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def aggregate(self) -> str:
        """The SQL aggregate of this metric over a group of events."""
        if self.kind == "rate":
            return f"avg(CASE WHEN coalesce({self.sql}, false) THEN 1.0 ELSE 0.0 END)"
        if self.kind == "total":
            return self.sql
        if self.stat == "mean":
            return f"avg({self.sql})"
        return f"quantile_cont({self.sql}, {float(self.stat)})"


def metric(name: str, index: int = 0) -> Metric:
    """A metric by name: one of :data:`RATES`, :data:`VALUES`, :data:`TOTALS`, or
    ``label:NAME`` / ``cluster:ID`` (rate of events with that label / in that cluster).
    ``index`` keeps the parameter names of several metrics apart."""
    if name in RATES:
        return Metric(name, "rate", RATES[name])
    if name in VALUES:
        stat, sql = VALUES[name]
        return Metric(name, "value", sql, stat)
    if name in TOTALS:
        return Metric(name, "total", TOTALS[name])
    kind, sep, value = name.partition(":")
    if sep and kind == "label":
        return Metric(name, "rate", f"list_contains(labels, $m{index})",
                      params={f"m{index}": value})
    if sep and kind == "cluster":
        return Metric(name, "rate", f"event_id IN (SELECT event_id FROM cluster_members "
                                    f"WHERE cluster_id = $m{index})", params={f"m{index}": value})
    raise UsageError(f"unknown metric {name!r}",
                     hint="one of " + ", ".join([*RATES, *VALUES, *TOTALS]) +
                          ", label:NAME or cluster:ID")


def column(name: str) -> str:
    """SQL for a cohort column of ``event_facts``: a canonical column, or a key inside
    ``attributes`` (validated: never pasted from arbitrary user text)."""
    if name in CANONICAL:
        return name
    if not _KEY.match(name):
        raise UsageError(f"cannot use {name!r} as a column",
                         hint=f"use a canonical column ({', '.join(sorted(CANONICAL))}) "
                              "or an attributes key (letters, digits, _ . -)")
    return f"(attributes ->> '{name}')"

"""Triage of every incident in a case: the distinct anomalies (failure family x feature(s)
x onset window), each with its top suspects, affected users and severity, ranked by
severity.

>>> inc = case.incidents()
>>> first = inc.df.row(0, named=True)
>>> first["incident_id"], first["families"], first["features"], first["top_suspect"]
('INC-1', ['refusal'], ['support_chat'], 'CHG-2041')

How:

1. One SQL scan counts, per feature and time bucket, the requests (traces) and the
   requests showing each detector family (the families of ``label_vocabulary``;
   negative feedback is a lagging signal about any failure, not a family of its own).
2. Per (family, feature): a change point on the bucketed rate (:func:`stats.onset`). A
   series with no upward change point, or whose rate after it is less than twice the
   rate before (with a one-sided two-proportion test at 5 %, Benjamini-Hochberg across
   the series tested), is a **baseline**: the detector fires at a steady rate through
   the history. It is reported as such, with its rate, count and denominator.
3. Rises of one feature whose onsets lie within ``merge_within`` of each other are one
   incident (a model upgrade that breaks JSON and invents values is one incident with
   two families); rises in different features stay apart.
4. Each incident is a pattern (an SQL condition over ``event_facts``, usable in every
   other stage) investigated on its own: :func:`forensics.cause.suspects.suspects`,
   :func:`forensics.playbook.episode.episode` (onset), :func:`forensics.impact.exact.impact`
   (restricted to the top suspect's exposure when it is a likely cause, else from the
   onset) and :func:`forensics.playbook.severity.severity`.
5. Ranked by severity level, then the seed playbook's category order (a data leak before
   a refusal), then affected users: a small leak is never dropped for a larger but
   milder pattern, and every incident found is listed.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import polars as pl

from forensics.cause.changepoints import hours
from forensics.cause.changes import interval
from forensics.cause.suspects import suspects
from forensics.core import stats
from forensics.core.db import frame, quote_literal
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.impact.exact import impact
from forensics.playbook.episode import episode
from forensics.playbook.severity import CATEGORIES, LEVELS, severity

MIN_RISE = 2.0          # the rate after the onset at least doubled: an incident
ALPHA = 0.05
LEAD_FAMILIES = ("data_leak", "harmful", "unauthorized_action")

SERIES_SQL = """
WITH f AS (
    SELECT feature, time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket,
           hash(coalesce(trace_id, event_id)) AS unit, labels
    FROM event_facts WHERE ts IS NOT NULL AND feature IS NOT NULL
), n AS (
    SELECT feature, bucket, count(DISTINCT unit) AS n FROM f GROUP BY ALL
), b AS (
    SELECT f.feature, f.bucket, v.family, count(DISTINCT f.unit) AS bad
    FROM f, unnest(f.labels) AS t(label)
    JOIN label_vocabulary v ON v.label = t.label
    WHERE v.bad AND v.family IS NOT NULL AND v.family <> 'feedback'
    GROUP BY ALL
)
SELECT n.feature, n.bucket, fam.family, n.n, coalesce(b.bad, 0) AS bad
FROM n CROSS JOIN (SELECT DISTINCT family FROM b) fam
LEFT JOIN b ON b.feature = n.feature AND b.bucket = n.bucket AND b.family = fam.family
ORDER BY 1, 3, 2"""


@dataclass
class Rise:
    """One (family, feature) series: a rise (``incident``) or a steady ``baseline``."""

    family: str
    feature: str
    kind: str
    onset: dt.datetime | None
    before: tuple[int, int]           # bad, requests before the onset (whole history: baseline)
    after: tuple[int, int]
    p_value: float | None = None


class IncidentsResult(Result):
    """One row per incident (ranked, most severe first) and per baseline (after them);
    ``pattern`` is the SQL condition every other stage takes for that incident."""

    kind = "incidents"

    def incident(self, incident_id: str) -> dict[str, Any]:
        """The row of one incident (or baseline) by its id."""
        for row in self.df.iter_rows(named=True):
            if row["incident_id"] == incident_id:
                return row
        known = ", ".join(self.df["incident_id"].to_list()) or "none"
        raise UsageError(f"no incident {incident_id!r} in this case", hint=f"known: {known}")

    def incidents(self) -> list[dict[str, Any]]:
        """The incidents only (no baselines), most severe first."""
        return self.df.filter(pl.col("kind") == "incident").to_dicts()


def _series(case: CaseHandle, bucket: str) -> pl.DataFrame:
    return frame(case.con, SERIES_SQL, {"bucket": interval(bucket)})


def _full_grid(part: pl.DataFrame, step: float, lo: dt.datetime, hi: dt.datetime
               ) -> tuple[np.ndarray, np.ndarray, list[dt.datetime]]:
    grid = pl.DataFrame({"bucket": pl.datetime_range(lo, hi, interval=f"{int(step * 3600)}s",
                                                     eager=True)}).with_columns(
        pl.col("bucket").cast(part["bucket"].dtype))
    g = grid.join(part.select("bucket", "n", "bad"), on="bucket", how="left").fill_null(0)
    return g["bad"].to_numpy(), g["n"].to_numpy(), g["bucket"].to_list()


def rises(case: CaseHandle, *, bucket: str = "1h", min_events: int = 5,
          method: str = "binseg") -> list[Rise]:
    """Every (family, feature) series with at least ``min_events`` bad requests, judged a
    rise or a baseline (steps 1-2 of the module docstring)."""
    s = _series(case, bucket)
    if s.height == 0:
        return []
    step = hours(bucket)
    lo, hi = s["bucket"].min(), s["bucket"].max()
    out: list[Rise] = []
    for (family, feature), part in s.group_by(["family", "feature"], maintain_order=True):
        if int(part["bad"].sum()) < min_events:
            continue
        x, m, buckets = _full_grid(part, step, lo, hi)  # type: ignore[arg-type]
        o = stats.onset(x, m, method=method)
        total = (int(x.sum()), int(m.sum()))
        if o is None or o.index <= 0:
            out.append(Rise(str(family), str(feature), "baseline", None, total, total))
            continue
        end = _episode_end(x, m, o)
        before = (int(x[:o.index].sum()), int(m[:o.index].sum()))
        after = (int(x[o.index:end].sum()), int(m[o.index:end].sum()))
        p = _one_sided_p(before, after)
        out.append(Rise(str(family), str(feature), "candidate", buckets[o.index], before,
                        after, p))
    q = stats.benjamini_hochberg([r.p_value if r.p_value is not None else math.nan
                                  for r in out])
    for r, qv in zip(out, q, strict=True):
        if r.kind != "candidate":
            continue
        rb, ra = _rate(r.before), _rate(r.after)
        risen = ra >= MIN_RISE * rb and not math.isnan(qv) and qv < ALPHA
        if not risen:
            r.kind, r.onset = "baseline", None
            r.before = r.after = (r.before[0] + r.after[0], r.before[1] + r.after[1])
        else:
            r.kind = "incident"
    return out


def _episode_end(x: np.ndarray, m: np.ndarray, o: stats.Onset) -> int:
    """Where the rise ended: the first later change point after which the rate falls
    below the rate since the onset (a rollback), else the end of the history."""
    points = sorted(p for p in o.points if p > o.index)
    for k, p in enumerate(points):
        nxt = points[k + 1] if k + 1 < len(points) else len(x)
        during = _rate((int(x[o.index:p].sum()), int(m[o.index:p].sum())))
        later = _rate((int(x[p:nxt].sum()), int(m[p:nxt].sum())))
        if later < during:
            return p
    return len(x)


def _rate(c: tuple[int, int]) -> float:
    return c[0] / c[1] if c[1] else 0.0


def _one_sided_p(before: tuple[int, int], after: tuple[int, int]) -> float:
    """P(rate after <= rate before), normal approximation with a continuity floor."""
    (x0, n0), (x1, n1) = before, after
    if n0 == 0 or n1 == 0:
        return 1.0
    p = (x0 + x1) / (n0 + n1)
    se = math.sqrt(max(p * (1 - p) * (1 / n0 + 1 / n1), 1e-12))
    z = (x1 / n1 - x0 / n0) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def group_rises(found: list[Rise], merge_within: str = "3h") -> list[list[Rise]]:
    """Rises of one feature with onsets within ``merge_within`` of each other: one group."""
    gap = dt.timedelta(hours=hours(merge_within))
    groups: list[list[Rise]] = []
    for r in sorted((r for r in found if r.kind == "incident"),
                    key=lambda r: (r.feature, r.onset)):
        g = groups[-1] if groups else None
        if g and g[0].feature == r.feature and r.onset is not None and \
                g[-1].onset is not None and r.onset - g[-1].onset <= gap:
            g.append(r)
        else:
            groups.append([r])
    return groups


def family_labels(case: CaseHandle, families: list[str]) -> list[str]:
    return frame(case.con, "SELECT label FROM label_vocabulary WHERE bad AND "
                           "list_contains($f, family) ORDER BY label",
                 {"f": families})["label"].to_list()


def pattern_for(case: CaseHandle, families: list[str], features: list[str]) -> str:
    """The incident as an SQL condition over ``event_facts``: a plain text any stage, the
    CLI (``--pattern``) and a saved finding can take as it is. The values are quoted as
    SQL string literals (:func:`forensics.core.db.quote_literal`)."""
    labels = ", ".join(quote_literal(x) for x in family_labels(case, families))
    feats = ", ".join(quote_literal(x) for x in features)
    return f"feature IN ({feats}) AND list_has_any(labels, [{labels}])"


def _category_rank(category: str | None) -> int:
    names = list(CATEGORIES)
    return names.index(category) if category in names else len(names)


def _investigate(case: CaseHandle, group: list[Rise], bucket: str) -> dict[str, Any]:
    families = sorted({r.family for r in group})
    features = sorted({r.feature for r in group})
    pattern = pattern_for(case, families, features)
    sus = suspects(case, pattern, bucket=bucket)
    top = sus.df.row(0, named=True) if sus.df.height else None
    likely = top is not None and top["verdict"] == "likely cause"
    ep = episode(case, pattern, bucket=bucket, feature=features[0] if len(features) == 1
                 else None, suspect=top["change_id"] if likely and top else False)
    onset = ep.onset or group[0].onset
    imp = impact(case, pattern, change=top["change_id"] if likely and top else None,
                 window=None if likely else (onset, None))
    sev = severity(case, pattern, bucket=bucket, ep=ep)
    before = (sum(r.before[0] for r in group), sum(r.before[1] for r in group))
    after = (sum(r.after[0] for r in group), sum(r.after[1] for r in group))
    return {
        "kind": "incident", "families": families, "features": features,
        "onset": onset, "onset_source": ep.meta.get("onset_source"),
        "rate_before": round(_rate(before), 5), "rate_after": round(_rate(after), 5),
        "bad_before": before[0], "requests_before": before[1],
        "bad_after": after[0], "requests_after": after[1],
        "severity": sev.meta["level"], "category": sev.meta["evidence"].get("category"),
        "severity_rule": sev.meta["rule"],
        "users": imp.meta.get("users"), "sessions": imp.meta.get("sessions"),
        "events": imp.meta.get("events"),
        "top_suspect": top["change_id"] if top else None,
        "suspect_verdict": top["verdict"] if top else None,
        "suspects": sus.df["change_id"].head(3).to_list() if sus.df.height else [],
        "pattern": pattern,
    }


def _baseline_row(case: CaseHandle, r: Rise) -> dict[str, Any]:
    return {"kind": "baseline", "families": [r.family], "features": [r.feature],
            "onset": None, "onset_source": None, "rate_before": round(_rate(r.before), 5),
            "rate_after": round(_rate(r.before), 5), "bad_before": r.before[0],
            "requests_before": r.before[1], "bad_after": r.before[0],
            "requests_after": r.before[1], "severity": None, "category": None,
            "severity_rule": None, "users": None, "sessions": None, "events": r.before[0],
            "top_suspect": None, "suspect_verdict": None, "suspects": [],
            "pattern": pattern_for(case, [r.family], [r.feature])}


SCHEMA: dict[str, Any] = {
          "incident_id": pl.String, "kind": pl.String, "families": pl.List(pl.String),
          "features": pl.List(pl.String), "onset": pl.Datetime("us"),
          "onset_source": pl.String, "rate_before": pl.Float64, "rate_after": pl.Float64,
          "bad_before": pl.Int64, "requests_before": pl.Int64, "bad_after": pl.Int64,
          "requests_after": pl.Int64, "severity": pl.String, "category": pl.String,
          "severity_rule": pl.String, "users": pl.Int64, "sessions": pl.Int64,
          "events": pl.Int64, "top_suspect": pl.String, "suspect_verdict": pl.String,
          "suspects": pl.List(pl.String), "pattern": pl.String}


def incidents(case: CaseHandle, *, bucket: str = "1h", min_events: int = 5,
              merge_within: str = "3h", baselines: bool = True) -> IncidentsResult:
    """The incidents of the case, most severe first, then (``baselines``) the steady
    detector rates; see the module docstring for how they are found.

    >>> case.incidents().meta["incidents"]
    1
    """
    found = rises(case, bucket=bucket, min_events=min_events)
    rows = [_investigate(case, g, bucket) for g in group_rises(found, merge_within)]
    levels = list(LEVELS)
    rows.sort(key=lambda r: (levels.index(r["severity"]) if r["severity"] in levels else 9,
                             _category_rank(r["category"]),
                             -int(r["users"] or 0)))
    for i, r in enumerate(rows):
        r["incident_id"] = f"INC-{i + 1}"
    base = [_baseline_row(case, r) for r in found if r.kind == "baseline"] if baselines else []
    base.sort(key=lambda r: -r["rate_before"])
    for i, r in enumerate(base):
        r["incident_id"] = f"BASE-{i + 1}"
    df = pl.DataFrame([{k: _plain(r.get(k)) for k in SCHEMA} for r in rows + base],
                      schema=SCHEMA)
    worst = rows[0]["severity"] if rows else None
    meta = {"incidents": len(rows), "baselines": len(base), "overall_severity": worst,
            "bucket": bucket, "min_events": min_events, "merge_within": merge_within,
            "rule": f"a (family, feature) rate that at least doubled after a change point "
                    f"(one-sided test, BH-corrected, alpha {ALPHA}) is a rise; else a "
                    f"baseline"}
    if not rows:
        meta["warning"] = "no incident: no detector family rose in any feature"
    return IncidentsResult(df, sql=SERIES_SQL, params={"bucket": interval(bucket)},
                           title="incidents", meta=meta)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return value


INCIDENT_ID = re.compile(r"^(?:INC|BASE)-\d+$")


def is_incident_id(pattern: Any) -> bool:
    """``"INC-2"`` (an incident) or ``"BASE-1"`` (a baseline) of :func:`incidents`."""
    return isinstance(pattern, str) and bool(INCIDENT_ID.match(pattern))


def incident_pattern(case: CaseHandle, pattern: Any, bucket: str = "1h") -> Any:
    """An incident id -> its pattern (an SQL condition); anything else as it is."""
    if not is_incident_id(pattern):
        return pattern
    return incidents(case, bucket=bucket).incident(pattern)["pattern"]


def likely_cause(row: dict[str, Any]) -> str | None:
    """An incident's top suspect when it is a likely cause, else none."""
    return row["top_suspect"] if row.get("suspect_verdict") == "likely cause" else None


R = TypeVar("R", bound=Result)


def each_incident(case: CaseHandle, fn: Callable[[dict[str, Any]], R], *,
                  bucket: str = "1h") -> R | None:
    """``fn`` run for every incident of the case (most severe first), its rows stacked
    with an ``incident_id`` column first; ``None`` when the case has no incident (the
    caller then answers for any bad signal, as before).

    >>> r = each_incident(case, lambda row: suspects(case, row["pattern"]))
    >>> r.df["incident_id"][0], r.df["change_id"][0]
    ('INC-1', 'CHG-2041')
    """
    rows = incidents(case, bucket=bucket, baselines=False).incidents()
    if not rows:
        return None
    parts, metas, first = [], [], None
    for row in rows:
        res = fn(row)
        first = first or res
        parts.append(res.df.select(pl.lit(row["incident_id"]).alias("incident_id"), pl.all()))
        metas.append({"incident_id": row["incident_id"], "pattern": row["pattern"],
                      "severity": row["severity"], **{k: v for k, v in res.meta.items()
                                                      if not isinstance(v, pl.DataFrame)}})
    assert first is not None
    df = pl.concat(parts, how="diagonal_relaxed")
    out = copy.copy(first)        # the most severe incident's result, every incident's rows
    out.df = df
    out.title = f"{first.kind} of every incident ({len(rows)})"
    out.meta = {**first.meta, "incidents": metas}
    return out

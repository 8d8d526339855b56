"""Who was hurt: affected users, sessions and events, exactly, by cohort.

>>> case.impact("over_refusal", by=["plan", "locale"]).meta["users"]
287
>>> case.impact("over_refusal", change="CHG-2041").meta["exposed_users"]
563

The pattern is a label, a cluster, a suspect change, or any SQL condition over
``event_facts``; a change also bounds the exposure window (from the change until it was
rolled back or replaced) and restricts to the events its new version served. Exact
counts are one set-based scan over ``event_facts`` (``GROUPING SETS`` for the total and
the cohorts); for very large cases ``approx=True`` counts distinct users and sessions
with HyperLogLog and states its error. Anything exported can suppress small cells.
Estimates from a sampled review are in :mod:`forensics.impact.estimate`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import polars as pl

from forensics.cause.changes import changes
from forensics.core.db import frame, quote_ident, scalar
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.metrics import column
from forensics.core.result import Result
from forensics.core.selection import Pattern, select

COHORTS = ("feature", "plan", "locale", "region", "client_version", "tenant")
VERSION_COLUMNS = ("model", "response_model", "prompt_version", "retrieval_version", "release")
# DuckDB's approx_count_distinct: HyperLogLog; measured relative standard error (see
# bench/RESULTS.md, "Impact and post-mortem"): about 1.04 / sqrt(1024).
HLL_RELATIVE_ERROR = 0.0325
COMPLAINT_NAMES = ("complaint", "report", "escalation", "ticket")
COMPLAINT_SOURCES = ("support_ticket", "support", "ticket", "email", "zendesk", "intercom")
COUNT_COLUMNS = ("users", "sessions", "events", "users_hit_repeatedly",
                 "users_with_negative_feedback", "users_who_complained", "complaints")


class ImpactResult(Result):
    """One row for all affected events (``cohort = 'all'``) and one per cohort."""

    kind = "impact"

    def plot(self, ax: Any = None, top: int = 15) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5))
        rows = self.df.filter(pl.col("cohort") != "all") if self.df.height > 1 else self.df
        rows = rows.head(top)
        labels = [str(v) for v in rows["cohort"].to_list()][::-1]
        values = [_number(v) for v in rows["users"].to_list()][::-1]
        ax.barh(labels, values, color="#c0392b")
        for y, raw in enumerate(rows["users"].to_list()[::-1]):
            if isinstance(raw, str):
                ax.annotate(raw, (0, y), va="center", fontsize=8)
        ax.set_xlabel("affected users")
        ax.set_title(self.title)
        return ax


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


# ---------------------------------------------------------------------------------------
# what counts as affected

def change_scope(case: CaseHandle, change_id: str) -> dict[str, Any]:
    """A change's feature, version column, new version and exposure window: from the
    change until a later change of the same feature and column (its rollback or
    replacement), or until the new version was last served.

    >>> [str(t) for t in change_scope(case, "CHG-2041")["window"]]
    ['2026-03-09 09:00:00', '2026-03-11 14:00:00']
    """

    table = changes(case, rollout=False).df
    row = table.filter(pl.col("change_id") == change_id)
    if row.height == 0:
        known = ", ".join(table["change_id"].head(8).to_list())
        raise UsageError(f"no change {change_id!r}", hint=f"see case.changes(): {known}")
    c = row.row(0, named=True)
    col = c["column"] if c["column"] in VERSION_COLUMNS else None
    start = c["first_seen"] if col and c["first_seen"] and c["first_seen"] < c["ts"] else c["ts"]
    later = table.filter((pl.col("feature") == c["feature"]) & (pl.col("column") == c["column"])
                         & (pl.col("ts") > c["ts"])).sort("ts", "change_id")
    end = later["ts"][0] if col and later.height else None
    ended_by = later.row(0, named=True) if col and later.height else None
    if col and end is None:
        last = scalar(case.con, f"SELECT max(ts) FROM events WHERE feature = ? AND {col} = ?",
                      [c["feature"], c["to_version"]])
        end = last + dt.timedelta(microseconds=1) if last is not None else None
    return {"change_id": change_id, "feature": c["feature"], "column": col,
            "from_version": c["from_version"], "to_version": c["to_version"],
            "kind": c["kind"], "window": (start, end), "note": c["note"],
            "ended_by": {k: ended_by[k] for k in ("change_id", "to_version", "note", "source")}
            if ended_by else None}


def _change_conds(scope: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    conds = ["feature = $c_feature"]
    params: dict[str, Any] = {"c_feature": scope["feature"]}
    if scope["column"]:
        conds.append(f"{scope['column']} = $c_version")
        params["c_version"] = scope["to_version"]
    return conds, params


def _window_conds(window: tuple[Any, Any] | None) -> tuple[list[str], dict[str, Any]]:
    if window is None:
        return [], {}
    conds, params = [], {}
    if window[0] is not None:
        conds.append("ts >= CAST($w_start AS TIMESTAMP)")
        params["w_start"] = _ts_text(window[0])
    if window[1] is not None:
        conds.append("ts < CAST($w_end AS TIMESTAMP)")
        params["w_end"] = _ts_text(window[1])
    return conds, params


def _is_change(case: CaseHandle, value: str) -> bool:
    """A declared change id, or an inferred one (``inferred:...``)."""
    return value.startswith("inferred:") or bool(
        scalar(case.con, "SELECT count(*) FROM changes WHERE change_id = ?", [value]))


def _ts_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


@dataclass(frozen=True)
class ImpactScope:
    """The events an impact question is about: ``condition`` over ``event_facts`` with its
    ``params``, described as ``pattern``; ``window`` the exposure window; ``change`` the
    change's scope (:func:`change_scope`) when the question is about a change, with
    ``exposed`` the condition of the events its new version served."""

    condition: str
    params: dict[str, Any]
    pattern: str
    window: tuple[Any, Any] | None
    change: dict[str, Any] | None
    exposed: str | None


def scope(case: CaseHandle, pattern: Pattern = None, *, change: str | None = None,
          window: tuple[Any, Any] | None = None) -> ImpactScope:
    """The SQL condition (over ``event_facts``) and parameters of an impact question:
    the pattern (any value :func:`forensics.core.selection.select` takes, or a change id;
    default any bad signal), restricted to the events a ``change`` served in its exposure
    window, and to ``window`` = (start, end)."""
    if isinstance(pattern, str) and change is None and _is_change(case, pattern):
        change, pattern = pattern, None
    sel = select(case, pattern)
    conds, params, desc = [sel.condition], dict(sel.params), sel.description
    chg = None
    if change is not None:
        chg = change_scope(case, change)
        more, p = _change_conds(chg)
        conds += more
        params.update(p)
        desc = f"{desc}, served by {change} ({chg['column'] or chg['kind']} " \
               f"{chg['to_version']})"
        if window is None:
            window = chg["window"]
    more, p = _window_conds(window)
    conds += more
    params.update(p)
    return ImpactScope(" AND ".join(f"({c})" for c in conds), params, desc, window, chg,
                       " AND ".join(f"({c})" for c in conds[1:]) if chg else None)


# ---------------------------------------------------------------------------------------
# exact impact

def hit_feedback_sql(hit: str) -> str:
    """Feedback on the events of the CTE ``hit`` (event_id, trace_id): given on the event
    or anywhere in its trace (a user rates the answer, not the tool span that acted), one
    row per (event, feedback row): hit_id, feedback_row, ts, negative, complaint."""
    names = ", ".join(f"'{n}'" for n in COMPLAINT_NAMES)
    sources = ", ".join(f"'{s}'" for s in COMPLAINT_SOURCES)
    pick = (f"f.rowid AS feedback_row, f.ts, coalesce(f.negative, false) AS negative, "
            f"lower(coalesce(f.name, '')) IN ({names}) "
            f"OR lower(coalesce(f.source, '')) IN ({sources}) AS complaint")
    return f"""
    SELECT h.event_id AS hit_id, {pick} FROM {hit} h JOIN feedback f ON f.event_id = h.event_id
    UNION
    SELECT h.event_id AS hit_id, {pick} FROM {hit} h JOIN feedback f ON f.trace_id = h.trace_id"""


def impact_sql(condition: str, by: list[str], approx: bool = False) -> str:
    """Affected users / sessions / events overall and per cohort, with first and last
    exposure, users hit more than once, and the negative feedback and complaints given on
    the affected events or in their traces."""
    users = "approx_count_distinct(user_id)" if approx else "count(DISTINCT user_id)"
    sessions = "approx_count_distinct(session_id)" if approx else "count(DISTINCT session_id)"
    keys = [f"CAST({column(b)} AS VARCHAR) AS {quote_ident(b)}" for b in by]
    key_select = "".join(f"{k}, " for k in keys)
    quoted = ", ".join(quote_ident(b) for b in by)
    group = f"GROUP BY GROUPING SETS ((), ({quoted}))" if by else ""
    label = " || ' / ' || ".join(f"coalesce({quote_ident(b)}, '?')" for b in by)
    cohort = f"CASE WHEN grouping({quoted}) > 0 THEN 'all' ELSE {label} END" if by else "'all'"
    return f"""
WITH hit AS (
    SELECT {key_select}event_id, trace_id, user_id, session_id, ts,
           count(*) OVER (PARTITION BY user_id) AS user_hits
    FROM event_facts WHERE {condition}
), fbh AS ({hit_feedback_sql("hit")}
), per_hit AS (
    SELECT hit_id, bool_or(negative) AS negative,
           list(DISTINCT feedback_row) FILTER (WHERE complaint) AS complaint_rows
    FROM fbh GROUP BY hit_id
), joined AS (
    SELECT hit.*, coalesce(p.negative, false) AS negative,
           coalesce(p.complaint_rows, []) AS complaint_rows
    FROM hit LEFT JOIN per_hit p ON p.hit_id = hit.event_id
)
SELECT {cohort} AS cohort,
       {''.join(f'{quote_ident(b)}, ' for b in by)}{users} AS users, {sessions} AS sessions,
       count(*) AS events, min(ts) AS first_exposure, max(ts) AS last_exposure,
       count(DISTINCT user_id) FILTER (WHERE user_hits > 1) AS users_hit_repeatedly,
       count(DISTINCT user_id) FILTER (WHERE negative) AS users_with_negative_feedback,
       count(DISTINCT user_id) FILTER (WHERE len(complaint_rows) > 0) AS users_who_complained,
       CAST(len(list_distinct(flatten(list(complaint_rows)))) AS BIGINT) AS complaints
FROM joined
{group}
ORDER BY (cohort <> 'all'), users DESC, cohort"""


def impact(case: CaseHandle, pattern: Pattern = None, *, change: str | None = None,
           window: tuple[Any, Any] | None = None, by: list[str] | str | None = None,
           approx: bool = False, suppress_below: int = 0) -> ImpactResult:
    """Exact distinct users, sessions and events affected, overall and per cohort.

    ``pattern``: a label, cluster id, failure family, change id or SQL condition over
    ``event_facts`` (:func:`forensics.core.selection.select`; default: any bad signal); ``change``
    restricts to the events the change's new version served in its exposure window;
    ``window`` = (start, end) bounds the exposure window. ``by``: cohort columns
    (plan, locale, region, client_version, feature, tenant, any event column or
    attributes key). Each row: users, sessions, events, first and last exposure, users
    hit more than once, users who gave negative feedback / complained, complaints, and
    the cohort's share of affected users. ``suppress_below=k`` shows cells of fewer than
    k users as ``<k`` (for exports). ``meta`` has the totals, the window and, for a
    change, the users and events it exposed.

    >>> case.impact("over_refusal", change="CHG-2041", by="plan").df["users"][0]
    258
    """
    sc = scope(case, pattern, change=change, window=window)
    return impact_in(case, sc, by=by, approx=approx, suppress_below=suppress_below)


def impact_in(case: CaseHandle, sc: ImpactScope, *, by: list[str] | str | None = None,
              approx: bool = False, suppress_below: int = 0) -> ImpactResult:
    """:func:`impact` for a :func:`scope` already resolved (the report asks several
    questions of the same scope)."""
    by = [by] if isinstance(by, str) else list(by or [])
    for b in by:
        column(b)                              # validates the name
    sql = impact_sql(sc.condition, by, approx)
    df = frame(case.con, sql, sc.params)
    if df.height == 0:
        df = pl.DataFrame([{"cohort": "all", **{b: None for b in by}, "users": 0,
                            "sessions": 0, "events": 0, "first_exposure": None,
                            "last_exposure": None, **{c: 0 for c in COUNT_COLUMNS[3:]}}])
    total = df.filter(pl.col("cohort") == "all").row(0, named=True)
    df = df.with_columns(share_of_users=(pl.col("users") / max(total["users"], 1)).round(4))
    meta = {k: total[k] for k in COUNT_COLUMNS}
    meta.update(first_exposure=total["first_exposure"], last_exposure=total["last_exposure"],
                window=[_ts_text(w) if w is not None else None for w in sc.window]
                if sc.window else None, pattern=sc.pattern, by=by,
                method="approximate distinct (HyperLogLog)" if approx else "exact distinct")
    if approx:
        meta["relative_error"] = HLL_RELATIVE_ERROR
        meta["users_interval_95"] = [round(total["users"] * (1 - 1.96 * HLL_RELATIVE_ERROR)),
                                     round(total["users"] * (1 + 1.96 * HLL_RELATIVE_ERROR))]
    if sc.change:
        meta["change"] = {k: v for k, v in sc.change.items() if k != "window"}
        meta.update(_exposed(case, sc))
    if suppress_below:
        df = suppress(df, suppress_below)
        meta["suppressed_below"] = suppress_below
    return ImpactResult(df, sql=sql, params=sc.params, title=f"impact: {sc.pattern}",
                        meta=meta)


def exposure(case: CaseHandle, sc: ImpactScope) -> Result:
    """Users, sessions and events the change of a :func:`scope` served in its exposure
    window, bad or not (the denominator of the share affected).

    >>> exposure(case, scope(case, change="CHG-2041")).df["exposed_events"][0]
    1582
    """
    if sc.change is None or sc.exposed is None:
        raise UsageError("exposure needs a change", hint="scope(case, change=CHANGE_ID)")
    change = sc.change["change_id"]
    params = {k: v for k, v in sc.params.items() if k.startswith(("c_", "w_"))}
    sql = ("SELECT count(DISTINCT user_id) AS exposed_users, count(DISTINCT session_id) AS "
           f"exposed_sessions, count(*) AS exposed_events FROM event_facts WHERE {sc.exposed}")
    return Result(frame(case.con, sql, params), sql=sql, params=params,
                  title=f"exposure to {change}")


def _exposed(case: CaseHandle, sc: ImpactScope) -> dict[str, Any]:
    return dict(exposure(case, sc).df.row(0, named=True))


def suppress(df: pl.DataFrame, k: int) -> pl.DataFrame:
    """Small cells for export: a cohort with fewer than ``k`` users shows ``<k`` in every
    count and no share; when only one cohort is suppressed, the next smallest is too, so
    it cannot be recovered from the total (secondary suppression).

    >>> suppress(pl.DataFrame({"cohort": ["all", "a", "b"], "users": [12, 10, 2],
    ...                        "events": [20, 17, 3]}), 5)["users"].to_list()
    ['12', '<5', '<5']
    """
    small = (df["users"] < k).to_list()
    cohorts = [i for i, c in enumerate(df["cohort"].to_list()) if c != "all"]
    hidden = [i for i in cohorts if small[i]]
    if len(hidden) == 1 and len(cohorts) > 1:
        rest = sorted((i for i in cohorts if not small[i]), key=lambda i: df["users"][i])
        small[rest[0]] = True
    mask = pl.Series("_small", small)
    cols = [c for c in COUNT_COLUMNS if c in df.columns]
    out = df.with_columns(mask).with_columns(
        [pl.when(pl.col("_small")).then(pl.lit(f"<{k}")).otherwise(pl.col(c).cast(pl.Utf8))
         .alias(c) for c in cols])
    if "share_of_users" in out.columns:
        out = out.with_columns(pl.when(pl.col("_small")).then(None)
                               .otherwise(pl.col("share_of_users")).alias("share_of_users"))
    return out.drop("_small")

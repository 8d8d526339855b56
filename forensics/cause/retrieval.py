"""Retrieval of the same queries before and after a retrieval-index change: overlap of
the top-k documents, documents that came and went, score shifts.

>>> diff = case.retrieval_diff(at="2026-03-09T09:00:00Z")
>>> diff.meta["matched_queries"] > 0
True
"""

from __future__ import annotations

from typing import Any

import polars as pl

from forensics.cause.changepoints import (
    used_params,
)
from forensics.core import stats
from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.core.selection import Pattern, pattern_condition


class RetrievalDiffResult(Result):
    """Documents that entered / left the top-k, with how often they came with bad
    outputs; ``.queries`` has overlap@k and rank-biased overlap per matched query."""

    kind = "retrieval_diff"

    def __init__(self, df: pl.DataFrame, queries: pl.DataFrame | None = None,
                 **kwargs: Any) -> None:
        super().__init__(df, **kwargs)
        self.queries = queries if queries is not None else pl.DataFrame()

    def plot(self, ax: Any = None) -> Any:
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        if self.queries.height:
            ax.hist(self.queries["rbo"].to_list(), bins=20, range=(0, 1), color="#2c3e50")
        ax.set_xlabel(f"rank-biased overlap (p={self.meta.get('rbo_p')}) per query")
        ax.set_ylabel("queries")
        ax.set_title(self.title)
        return ax


def retrieval_diff(case: CaseHandle, before: str | None = None, after: str | None = None, *,
                   at: Any = None, feature: str | None = None, k: int = 5, p: float = 0.9,
                   pattern: Pattern = None, level: float = 0.95) -> RetrievalDiffResult:
    """Retrieval before vs after an index change, on the same queries (same normalised
    ``input_text``: lower case, collapsed white space).

    Cohorts: ``before``/``after`` are ``retrieval_version`` values, or ``at=TS`` splits
    in time. Per query: the top-``k`` documents (ordered by mean rank over its events),
    overlap@k and rank-biased overlap (extrapolated, Webber et al. 2010, persistence
    ``p``). Per document: entered, left or kept, with the events that retrieved it before
    and after and the pattern rate (default any bad signal) of the after-events that
    retrieved it, with a Wilson interval. ``meta['new_docs']`` contrasts after-events
    whose top-k held a new document with those that did not (Newcombe interval).

    Without cohorts, the newest index version (by first use) is compared with the one
    in use before it.

    >>> case.retrieval_diff(at="2026-03-09T09:00:00Z").meta["k"]
    5
    """
    cond, params, desc = pattern_condition(case, pattern)
    params = {**params, "k": int(k), "p": float(p), "feature": feature}
    if at is not None:
        side = "CASE WHEN e.ts < CAST($at AS TIMESTAMP) THEN 'before' ELSE 'after' END"
        params["at"] = str(at)
        keep = "true"
    elif before is not None and after is not None:
        side = "CASE WHEN e.retrieval_version = $before THEN 'before' ELSE 'after' END"
        params.update(before=str(before), after=str(after))
        keep = "e.retrieval_version IN ($before, $after)"
    else:
        before, after = _latest_index_change(case, feature, before, after)
        side = "CASE WHEN e.retrieval_version = $before THEN 'before' ELSE 'after' END"
        params.update(before=before, after=after)
        keep = "e.retrieval_version IN ($before, $after)"
    base = f"""
WITH ev AS (
    SELECT e.event_id, {side} AS side,
           lower(regexp_replace(trim(e.input_text), '\\s+', ' ', 'g')) AS q,
           coalesce({cond}, false) AS bad
    FROM event_facts e
    WHERE {keep} AND e.input_text IS NOT NULL
      AND ($feature IS NULL OR e.feature = $feature)
      AND e.event_id IN (SELECT event_id FROM retrievals)
), hits AS (
    SELECT ev.event_id, ev.side, ev.q, ev.bad, r.doc_id, r.rank
    FROM ev JOIN retrievals r USING (event_id) WHERE r.rank <= $k
)"""
    query_sql = base + """, per_doc AS (
    SELECT q, side, doc_id, avg(rank) AS mean_rank, count(*) AS hits FROM hits GROUP BY ALL
), lists AS (
    SELECT q, side, list(doc_id ORDER BY mean_rank, hits DESC, doc_id)[1:$k] AS docs
    FROM per_doc GROUP BY q, side
), pairs AS (
    SELECT b.q, b.docs AS before_docs, a.docs AS after_docs
    FROM lists b JOIN lists a ON a.q = b.q AND b.side = 'before' AND a.side = 'after'
)
SELECT q AS query, before_docs, after_docs,
       len(list_intersect(before_docs, after_docs)) / $k AS overlap_at_k,
       (1 - $p) * list_sum(list_transform(range(1, $k + 1), lambda d:
            pow($p, d - 1) * len(list_intersect(before_docs[1:d], after_docs[1:d])) / d))
       + pow($p, $k) * len(list_intersect(before_docs, after_docs)) / $k AS rbo
FROM pairs ORDER BY rbo, query"""
    doc_sql = base + """, docs AS (
    SELECT doc_id,
           count(DISTINCT event_id) FILTER (WHERE side = 'before') AS events_before,
           count(DISTINCT event_id) FILTER (WHERE side = 'after') AS events_after,
           count(DISTINCT event_id) FILTER (WHERE side = 'after' AND bad) AS bad_after
    FROM hits GROUP BY doc_id
)
SELECT doc_id, CASE WHEN events_before = 0 THEN 'entered' WHEN events_after = 0 THEN 'left'
                    ELSE 'kept' END AS status, events_before, events_after, bad_after
FROM docs ORDER BY bad_after DESC, events_after DESC, doc_id"""
    queries = frame(case.con, query_sql, used_params(query_sql, params))
    docs = frame(case.con, doc_sql, used_params(doc_sql, params))
    if docs.height:
        rate, low, high = stats.wilson_arrays(docs["bad_after"].to_numpy(),
                                              docs["events_after"].to_numpy(), level)
        docs = docs.with_columns(pl.Series("bad_rate_after", rate).fill_nan(None),
                                 pl.Series("low", low).fill_nan(None),
                                 pl.Series("high", high).fill_nan(None))
        # Strongest evidence first: the lower bound of the bad rate, not the raw count
        # (a document that came with few but mostly bad answers outranks a common one).
        docs = docs.sort(["low", "bad_after", "doc_id"], descending=[True, True, False],
                         nulls_last=True)
    contrast_sql = base + """, flagged AS (
    SELECT event_id, bool_or(doc_id IN (SELECT doc_id FROM hits GROUP BY doc_id
                                        HAVING count(*) FILTER (WHERE side = 'before') = 0))
               AS has_new, any_value(bad) AS bad
    FROM hits WHERE side = 'after' GROUP BY event_id
)
SELECT has_new, count(*) AS n, count(*) FILTER (WHERE bad) AS bad FROM flagged GROUP BY has_new"""
    cnt = {r["has_new"]: r for r in
           frame(case.con, contrast_sql, used_params(contrast_sql, params)).to_dicts()}
    x1, n1 = (cnt.get(True) or {}).get("bad", 0), (cnt.get(True) or {}).get("n", 0)
    x0, n0 = (cnt.get(False) or {}).get("bad", 0), (cnt.get(False) or {}).get("n", 0)
    d = stats.newcombe(x0, n0, x1, n1, level)
    meta = {"before": before or f"before {at}", "after": after or f"after {at}", "k": k,
            "rbo_p": p, "pattern": desc, "matched_queries": queries.height,
            "mean_overlap_at_k": float(queries["overlap_at_k"].mean())  # type: ignore[arg-type]
            if queries.height else None,
            "mean_rbo": float(queries["rbo"].mean())  # type: ignore[arg-type]
            if queries.height else None,
            "docs_entered": int((docs["status"] == "entered").sum()) if docs.height else 0,
            "docs_left": int((docs["status"] == "left").sum()) if docs.height else 0,
            "new_docs": {"with_new_doc": {"bad": x1, "events": n1, "rate": x1 / n1 if n1
                                          else None},
                         "without": {"bad": x0, "events": n0,
                                     "rate": x0 / n0 if n0 else None},
                         "diff": d.estimate, "ci_low": d.low, "ci_high": d.high,
                         "p_value": stats.two_proportion_test(x0, n0, x1, n1),
                         "small_sample": stats.small_sample(x1, n1) or
                         stats.small_sample(x0, n0)}}
    return RetrievalDiffResult(docs, queries=queries, sql=doc_sql,
                               params=used_params(doc_sql, params),
                               title=f"retrieval diff {meta['before']} -> {meta['after']}",
                               meta=meta)


def _latest_index_change(case: CaseHandle, feature: str | None, before: str | None,
                         after: str | None) -> tuple[str, str]:
    """The newest retrieval_version by first use, and the one first used before it (or
    whichever of the two the caller gave)."""
    versions = [r[0] for r in case.con.execute(
        "SELECT retrieval_version FROM events WHERE retrieval_version IS NOT NULL "
        "AND ($f IS NULL OR feature = $f) GROUP BY 1 ORDER BY min(ts) DESC, 1",
        {"f": feature}).fetchall()]
    if after is None:
        after = versions[0] if versions else None
    if before is None and after in versions:
        older = versions[versions.index(after) + 1:]
        before = older[0] if older else None
    if before is None or after is None:
        raise UsageError("no retrieval index change to compare: the events carry fewer than "
                         "two retrieval_version values",
                         hint="give before= and after= index versions, or at=TIME")
    return str(before), str(after)

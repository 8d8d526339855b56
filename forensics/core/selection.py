"""What counts as the bad pattern: a label, a cluster, or an SQL condition over
``event_facts``. Kept light (no statistics imports) so that impact and the report can
resolve a pattern without loading the root-cause stage.

>>> pattern_condition(case, "pii_leak")        # doctest: +SKIP
('list_contains(labels, $p_label)', {'p_label': 'pii_leak'}, 'label pii_leak')
"""

from __future__ import annotations

from typing import Any

from forensics.core.db import scalar
from forensics.core.handle import CaseHandle


def pattern_condition(case: CaseHandle, pattern: str | None = None, *, label: str | None = None,
                      cluster: str | None = None,
                      where: str | None = None) -> tuple[str, dict[str, Any], str]:
    """(SQL condition over ``event_facts``, parameters, description) of a bad pattern.

    ``pattern`` is a label, a cluster id or an SQL condition (tried in that order);
    nothing given: ``is_bad`` (any bad signal)."""
    if pattern is not None and label is None and cluster is None and where is None:
        if scalar(case.con, "SELECT count(*) FROM labels WHERE label = ?", [pattern]):
            label = pattern
        elif scalar(case.con, "SELECT count(*) FROM cluster_members WHERE cluster_id = ?",
                    [pattern]):
            cluster = pattern
        else:
            where = pattern
    conds, params, desc = [], {}, []
    if label is not None:
        conds.append("list_contains(labels, $p_label)")
        params["p_label"] = label
        desc.append(f"label {label}")
    if cluster is not None:
        conds.append("event_id IN (SELECT event_id FROM cluster_members "
                     "WHERE cluster_id = $p_cluster)")
        params["p_cluster"] = cluster
        desc.append(f"cluster {cluster}")
    if where:
        conds.append(f"({where})")
        desc.append(where)
    if not conds:
        return "is_bad", {}, "any bad signal (is_bad)"
    return " AND ".join(conds), params, " and ".join(desc)

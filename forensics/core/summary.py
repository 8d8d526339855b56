"""What a case holds, at a glance: the first thing an investigator asks of it.

>>> case.summary().df.select("table", "rows").head(2).rows()
[('events', 24127), ('feedback', 1010)]
"""

from __future__ import annotations

from forensics.core.db import run_sql
from forensics.core.handle import CaseHandle
from forensics.core.result import Result

SUMMARY_SQL = """
SELECT 'events' AS "table", count(*) AS rows, min(ts) AS first_ts, max(ts) AS last_ts,
       count(DISTINCT user_id) AS users, count(DISTINCT session_id) AS sessions,
       count(DISTINCT feature) AS features
FROM events
UNION ALL SELECT 'feedback', count(*), min(ts), max(ts), count(DISTINCT user_id), NULL, NULL
FROM feedback
UNION ALL SELECT 'changes', count(*), min(ts), max(ts), NULL, NULL, count(DISTINCT feature)
FROM changes
UNION ALL SELECT 'retrievals', count(*), NULL, NULL, NULL, NULL, NULL FROM retrievals
UNION ALL SELECT 'moderations', count(*), NULL, NULL, NULL, NULL, NULL FROM moderations
UNION ALL SELECT 'rejects', count(*), NULL, NULL, NULL, NULL, NULL FROM rejects
"""

FEATURES_SQL = """
SELECT feature, count(*) AS events, count(DISTINCT user_id) AS users,
       count(*) FILTER (WHERE status = 'error') AS errors,
       round(100.0 * count(*) FILTER (WHERE status = 'error') / count(*), 2) AS error_pct,
       string_agg(DISTINCT model, ', ' ORDER BY model) AS models,
       string_agg(DISTINCT prompt_version, ', ' ORDER BY prompt_version) AS prompt_versions
FROM events GROUP BY feature ORDER BY events DESC
"""


def summarize(case: CaseHandle) -> Result:
    """One row per table with counts and time span; per-feature detail in ``meta``."""
    result = run_sql(case.con, SUMMARY_SQL, title="case summary")
    evidence = case.con.execute("SELECT count(*), coalesce(sum(rows_loaded), 0), "
                                "coalesce(sum(rows_rejected), 0) FROM evidence").fetchall()[0]
    result.meta.update({"evidence_files": evidence[0], "rows_loaded": evidence[1],
                        "rows_rejected": evidence[2], "path": str(case.path)})
    result.meta["features"] = run_sql(case.con, FEATURES_SQL).rows()
    return result

"""Findings with provenance: a recorded result keeps its SQL, parameters, rows and the
sha256 of the evidence it was computed from, and can be re-run and checked.

>>> f = case.record(case.impact("over_refusal", change="CHG-2041"), "Users refused",
...                 note="exact count over the exposure window")
>>> case.check_finding(f)["reproduced"]
True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import polars as pl

from forensics.core.db import frame
from forensics.core.errors import UsageError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result, dumps


def _digest(df: pl.DataFrame) -> str:
    """A stable fingerprint of rows (order-insensitive)."""
    rows = sorted(dumps(r, sort_keys=True, ensure_ascii=True) for r in df.to_dicts())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _sql_rows(case: CaseHandle, result: Result) -> pl.DataFrame:
    if not result.sql:
        return pl.DataFrame()
    return frame(case.con, result.sql, result.params or None)


def attached_snapshots(case: CaseHandle) -> list[dict[str, Any]]:
    """The snapshot of each evidence source read in place (Parquet files' digest,
    Iceberg snapshot id, Delta version) at the time of a finding; empty without any."""
    has = case.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                           "'attachments' AND database_name = current_database()").fetchall()
    if not has[0][0]:
        return []
    rows = case.con.execute("""
        SELECT evidence_id, kind, source, snapshot FROM attachments
        QUALIFY row_number() OVER (PARTITION BY table_id ORDER BY evidence_id DESC) = 1
        ORDER BY evidence_id""").fetchall()
    return [dict(zip(("evidence_id", "kind", "source", "snapshot"), r, strict=True))
            for r in rows]


def record(case: CaseHandle, result: Result, title: str, note: str = "") -> str:
    """Store ``result`` as a finding; returns its id (``F001``, ``F002``, ...)."""
    if not title:
        raise UsageError("a finding needs a title")
    shas = [r[0] for r in case.con.execute(
        "SELECT sha256 FROM evidence ORDER BY evidence_id").fetchall()]
    n = case.con.execute("SELECT count(*) FROM findings").fetchall()[0][0]
    finding_id = f"F{n + 1:03d}"
    stored = result.to_dict()
    stored["sql_digest"] = _digest(_sql_rows(case, result)) if result.sql else None
    stored["snapshots"] = attached_snapshots(case)
    case.con.execute(
        "INSERT INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [finding_id, title, note, result.kind, result.sql,
         dumps(result.params, ensure_ascii=True), dumps(stored), shas,
         dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    return finding_id


def record_once(case: CaseHandle, result: Result, title: str, note: str = "") -> str:
    """Like :func:`record`, but when a finding of the same kind, SQL and parameters with
    the same rows is already in the case, return its id instead of adding one (so a
    report generated twice cites the same findings).

    >>> first = record_once(case, case.impact("over_refusal"), "Users refused")
    >>> record_once(case, case.impact("over_refusal"), "Users refused") == first
    True
    """
    params = dumps(result.params, ensure_ascii=True)
    rows = case.con.execute(
        "SELECT finding_id, result ->> 'sql_digest' FROM findings WHERE kind = ? AND sql = ? "
        "AND CAST(params AS VARCHAR) = ? ORDER BY finding_id", [result.kind, result.sql,
                                                               params]).fetchall()
    if rows:
        digest = _digest(_sql_rows(case, result)) if result.sql else None
        for finding_id, stored in rows:
            if stored == digest:
                return str(finding_id)
    return record(case, result, title, note)


def list_findings(case: CaseHandle) -> Result:
    sql = ("SELECT finding_id, title, kind, note, created_at, len(evidence_sha256) AS evidence "
           "FROM findings ORDER BY finding_id")
    return Result(frame(case.con, sql), sql=sql, title="findings")


def get(case: CaseHandle, finding_id: str) -> dict[str, Any]:
    rows = case.con.execute("SELECT finding_id, title, note, kind, sql, params, result, "
                            "evidence_sha256, created_at FROM findings WHERE finding_id = ?",
                            [finding_id]).fetchall()
    if not rows:
        raise UsageError(f"no finding {finding_id!r}", hint="see case.findings()")
    keys = ["finding_id", "title", "note", "kind", "sql", "params", "result",
            "evidence_sha256", "created_at"]
    found = dict(zip(keys, rows[0], strict=True))
    found["params"] = json.loads(found["params"] or "{}")
    found["result"] = json.loads(found["result"] or "{}")
    return found


def rerun(case: CaseHandle, finding_id: str) -> Result:
    """Run the finding's SQL again with its parameters."""
    found = get(case, finding_id)
    df = frame(case.con, found["sql"], found["params"] or None)
    return Result(df, sql=found["sql"], params=found["params"], title=found["title"])


def check(case: CaseHandle, finding_id: str) -> dict[str, Any]:
    """Re-run a finding and compare with what was recorded: same SQL rows, and the same
    evidence still in the case."""
    found = get(case, finding_id)
    now = [r[0] for r in case.con.execute("SELECT sha256 FROM evidence").fetchall()]
    missing = sorted(set(found["evidence_sha256"]) - set(now))
    added = sorted(set(now) - set(found["evidence_sha256"]))
    digest = _digest(rerun(case, finding_id).df) if found["sql"] else None
    same = digest == found["result"].get("sql_digest")
    return {"finding_id": finding_id, "reproduced": same and not missing,
            "same_rows": same, "evidence_missing": missing, "evidence_added": added,
            "note": ("evidence was added since; the rows still match" if added and same
                     else "rows differ from the recorded result" if not same else "")}

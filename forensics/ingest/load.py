"""Loading evidence into the case: one file, one transaction, nothing lost.

The steps, all set-based SQL in DuckDB:

1. hash the file (its sha256 is its identity: the same file twice adds nothing);
2. a reader stages it: container readers (JSONL, JSON, CSV, Parquet) plus a mapping, or a
   vendor reader (OTLP, OpenInference, Langfuse, ...), into ``_stage_*`` temp tables;
3. :func:`commit_stage` checks each staged record (timestamp, types, duplicate ids),
   appends the good ones to the canonical tables and the others to ``rejects``;
4. the ``evidence`` row records path, sha256, bytes, format, counts and the mapping.

Records in = rows loaded + rows rejected, for every file.

>>> case.load("audit.jsonl.gz", mapping={"user_id": "request.user.id"})  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.core.db import scalar, temp_exists
from forensics.core.errors import ForensicsError, FormatError, LoadError, MappingError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.ingest import mapping as mapping_mod
from forensics.ingest import readers
from forensics.ingest import vendors as formats

LOADER_VERSION = "1"
# DuckDB's memory cap while loading: staging spills to disk beyond it, so a load's
# peak memory does not grow with the file. Override with FORENSICS_LOAD_MEMORY.
LOAD_MEMORY = "1GB"
# Settings of the loading connection, restored afterwards. The staging statements are
# large (one CTE layer per convention); DuckDB's common-subplan search takes seconds to
# plan each of them and finds nothing to share, so it is off while loading.
LOAD_SETTINGS = {"memory_limit": LOAD_MEMORY, "disabled_optimizers": "common_subplan"}
TARGETS = ("events", "changes", "feedback")
GENERIC = tuple(readers.CONTAINERS)

EVENT_COLUMNS = ["event_id", "trace_id", "span_id", "parent_id", "ts", "duration_ms", "user_id",
                 "session_id", "feature", "kind", "name", "provider", "model", "response_model",
                 "prompt_name", "prompt_version", "retrieval_version", "release",
                 "system_prompt", "input_text", "output_text", "finish_reason", "status",
                 "error", "input_tokens", "output_tokens", "cost_usd", "tool_name", "tool_args",
                 "attributes"]
FEEDBACK_COLUMNS = ["event_id", "trace_id", "user_id", "ts", "name", "value", "score",
                    "negative", "comment", "source", "attributes"]
CHANGE_COLUMNS = ["change_id", "ts", "kind", "feature", "from_version", "to_version", "source",
                  "note", "attributes"]


@dataclass
class Stats:
    records_in: int = 0
    loaded: int = 0
    rejected: int = 0

    def add(self, other: Stats) -> None:
        self.records_in += other.records_in
        self.loaded += other.loaded
        self.rejected += other.rejected


class LoadResult(Result):
    kind = "load"


@dataclass
class FileFacts:
    sha256: str
    size: int
    lines: int | None  # physical lines of an uncompressed file


def sha256_file(path: Path) -> FileFacts:
    """sha256, size and (for uncompressed files) the number of lines, in one pass."""
    digest = hashlib.sha256()
    size = newlines = 0
    last = b""
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
    compressed = path.name.lower().endswith((".gz", ".zst"))
    lines = None if compressed else newlines + (1 if size and last != b"\n" else 0)
    return FileFacts(digest.hexdigest(), size, lines)


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


_scalar = scalar
_exists = temp_exists


def _drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every temp table and view a load made (their names start with ``_``)."""
    for name, is_view in con.execute(
            "SELECT view_name, true FROM duckdb_views() WHERE temporary "
            "AND starts_with(view_name, '_') UNION ALL "
            "SELECT table_name, false FROM duckdb_tables() WHERE database_name = 'temp' "
            "AND starts_with(table_name, '_')").fetchall():
        con.execute(f'DROP {"VIEW" if is_view else "TABLE"} IF EXISTS temp."{name}"')


# ---------------------------------------------------------------------------------------
# deciding what a file is

def _target_from_keys(keys: set[str]) -> str:
    lowered = {k.lower() for k in keys}
    has_text = lowered & {"output_text", "output", "completion", "response", "input_text",
                          "input", "prompt", "messages", "span_id", "model"}
    versioned = lowered & {"to_version", "to", "new_version", "version"}
    changey = lowered & {"kind", "change_id", "from", "from_version", "old_version"}
    if ({"to_version", "kind"} <= lowered or {"from", "to"} <= lowered
            or (versioned and changey and not has_text)):
        return "changes"
    if not has_text and lowered & {"value", "rating", "thumbs", "score", "verdict"} and \
            lowered & {"event_id", "trace_id", "request_id", "user_id"}:
        return "feedback"
    return "events"


def _resolve_format(path: Path, format: str | None) -> tuple[str, str | None]:
    """(reader name, forced target or None)."""
    if format in TARGETS[1:]:
        return formats.detect_format(path) if format else "jsonl", format
    if format is None:
        return formats.detect_format(path), None
    if format in GENERIC or formats.vendor(format):
        _check_format_fits(path, format)
        return format, None
    known = ", ".join([*GENERIC, *TARGETS[1:], *formats.vendor_names()])
    raise FormatError(f"unknown format {format!r}", hint=f"use one of: {known}")


def _check_format_fits(path: Path, format: str) -> None:
    """A wrong --format flag is refused before anything is read into the case."""
    if format not in GENERIC:
        return
    head = formats.read_head(path)
    looks_json = head.text.lstrip()[:1] in ("{", "[")
    if format == "parquet" and not head.is_parquet:
        raise FormatError(f"{path}: --format parquet, but the file is not Parquet "
                          "(no PAR1 magic bytes)")
    if format != "parquet" and head.is_parquet:
        raise FormatError(f"{path}: --format {format}, but the file is Parquet")
    if format == "csv" and looks_json:
        raise FormatError(f"{path}: --format csv, but the file holds JSON",
                          hint="use --format jsonl or json, or leave --format out")
    if format in ("jsonl", "json") and head.text.strip() and not looks_json:
        raise FormatError(f"{path}: --format {format}, but the file does not start with JSON",
                          hint="use --format csv, or leave --format out")


# ---------------------------------------------------------------------------------------
# staging

def _stage_generic(con: duckdb.DuckDBPyConnection, path: Path, reader: str,
                   target: str | None, mapping: dict[str, str], lines: int | None = None,
                   clean: readers.CleanJsonl | None = None) -> tuple[str, dict[str, list[str]]]:
    if clean is not None:
        readers.lazy_records(con, path)
    elif reader == "jsonl":
        readers.stage_jsonl(con, path, lines=lines)
    else:
        readers.CONTAINERS[reader](con, path)
    if target is None:
        keys = set(clean.keys) if clean else mapping_mod.sample_keys(con, limit=1000)
        target = _target_from_mapping(mapping) if mapping else _target_from_keys(keys)
    if target == "events":
        return target, mapping_mod.stage_events(con, mapping, clean)
    stage = {"changes": mapping_mod.stage_changes, "feedback": mapping_mod.stage_feedback}[target]
    return target, stage(con, mapping)


def _target_from_mapping(mapping: dict[str, str]) -> str:
    if "to_version" in mapping:
        return "changes"
    if "value" in mapping and not {"output_text", "input_text"} & set(mapping):
        return "feedback"
    return "events"


# ---------------------------------------------------------------------------------------
# committing

def _verdicts(con: duckdb.DuckDBPyConnection, sha: str, id_col: str | None,
              table: str, existing: str | None) -> None:
    """``_verdict(_ord, id, reason)`` for every staged row of ``table``. Repeated ids are
    found by a grouping (which DuckDB spills to disk when it must), and only the rows of
    a repeated id are ranked: a window over every row holds them all in memory."""
    ident = (f"coalesce(s.{id_col}, md5('{sha}:' || s.locator))" if id_col else "NULL")
    dup_file = dup_case = "NULL"
    ctes = joins = ""
    if id_col:
        ctes = f"""WITH _rep AS (SELECT {ident} AS id FROM {table} s GROUP BY 1
                                 HAVING count(*) > 1),
            _later AS (
                SELECT _ord, first_loc FROM (
                    SELECT s._ord, row_number() OVER w AS n,
                           first_value(s.locator) OVER w AS first_loc
                    FROM {table} s WHERE {ident} IN (SELECT id FROM _rep)
                    WINDOW w AS (PARTITION BY {ident} ORDER BY s._ord))
                WHERE n > 1)"""
        joins = "LEFT JOIN _later f ON f._ord = s._ord"
        dup_file = ("CASE WHEN f._ord IS NOT NULL THEN 'duplicate " + id_col +
                    " ' || i.id || ' (first at ' || f.first_loc || ')' END")
    if id_col and existing:
        joins += (f" LEFT JOIN (SELECT {id_col} AS id, min(evidence_id) AS ev FROM {existing} "
                  f"GROUP BY {id_col}) e ON e.id = i.id")
        dup_case = ("CASE WHEN e.id IS NOT NULL THEN 'duplicate " + id_col +
                    " ' || i.id || ' already in the case (evidence ' || e.ev || ')' END")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _verdict AS
        {ctes}
        SELECT s._ord, i.id, coalesce(
            s._reject,
            CASE WHEN s.ts IS NULL AND (s._ts_raw IS NULL OR trim(s._ts_raw) = '')
                     THEN 'missing timestamp'
                 WHEN s.ts IS NULL
                     THEN 'unparseable timestamp or time zone: ' || left(s._ts_raw, 80)
            END,
            {dup_case}, {dup_file}) AS reason
        FROM {table} s, LATERAL (SELECT {ident} AS id) i {joins}
    """)


def _commit_table(con: duckdb.DuckDBPyConnection, evidence_id: int, sha: str, table: str,
                  target: str, columns: list[str], id_col: str | None) -> Stats:
    _verdicts(con, sha, id_col, table, target if id_col else None)
    cols = [c for c in columns if c != id_col]
    have = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND database_name = 'temp'",
        [table]).fetchall()}
    select = ", ".join(f"s.{c}" if c in have else f"NULL AS {c}" for c in cols)
    id_sel = f"v.id AS {id_col}, " if id_col else ""
    con.execute(f"""
        INSERT INTO {target} BY NAME
        SELECT {id_sel}{select}, {evidence_id} AS evidence_id, s.locator
        FROM {table} s JOIN _verdict v USING (_ord) WHERE v.reason IS NULL
    """)
    total, bad = con.execute("SELECT count(*), count(reason) FROM _verdict").fetchall()[0]
    raw, source = "s._raw::VARCHAR", ""
    if _exists(con, "_stage_records") and table in ("_stage_events", "_stage_changes",
                                                    "_stage_feedback"):
        raw = "coalesce(s._raw::VARCHAR, r.j::VARCHAR)"
        source = "LEFT JOIN _stage_records r ON r._ord = s._ord"
    if bad:  # (the source records may be a view over the file: read only when needed)
        con.execute(f"""
            INSERT INTO rejects
            SELECT {evidence_id}, s.locator, v.reason, left({raw}, {readers.RAW_LIMIT})
            FROM {table} s JOIN _verdict v USING (_ord) {source}
            WHERE v.reason IS NOT NULL ORDER BY s._ord
        """)
    if target == "events":
        _commit_children(con, evidence_id)
    return Stats(records_in=total, loaded=total - bad, rejected=bad)


def _commit_children(con: duckdb.DuckDBPyConnection, evidence_id: int) -> None:
    """Retrieved documents and moderation results of the events just accepted."""
    for child, cols in (("retrievals", "rank, doc_id, score, content"),
                        ("moderations", "stage, category, flagged, score, action")):
        if not _exists(con, f"_stage_{child}"):
            continue
        con.execute(f"""
            INSERT INTO {child} BY NAME
            SELECT v.id AS event_id, {', '.join('c.' + c.strip() for c in cols.split(','))},
                   {evidence_id} AS evidence_id
            FROM _stage_{child} c JOIN _verdict v USING (_ord)
            WHERE v.reason IS NULL ORDER BY c._ord
        """)


def commit_stage(con: duckdb.DuckDBPyConnection, evidence_id: int, sha: str) -> Stats:
    """Move whatever is staged into the canonical tables and ``rejects``."""
    stats = Stats()
    plan = [("_stage_events", "events", EVENT_COLUMNS, "event_id"),
            ("_stage_feedback", "feedback", FEEDBACK_COLUMNS, None),
            ("_stage_changes", "changes", CHANGE_COLUMNS, "change_id")]
    for table, target, columns, id_col in plan:
        if _exists(con, table):
            stats.add(_commit_table(con, evidence_id, sha, table, target, columns, id_col))
    n_pre = _scalar(con, "SELECT count(*) FROM _stage_rejects") if \
        _exists(con, "_stage_rejects") else 0
    if n_pre:
        con.execute(f"INSERT INTO rejects SELECT {evidence_id}, locator, reason, raw "
                    "FROM _stage_rejects")
    stats.add(Stats(records_in=n_pre, rejected=n_pre))
    return stats


# ---------------------------------------------------------------------------------------
# the public entry point

def load_file(case: CaseHandle, path: str | Path, format: str | None = None,
              mapping: dict[str, Any] | str | Path | None = None,
              progress: Callable[[str], None] | None = None) -> LoadResult:
    """Load one file into the case, in one transaction. Returns a one-row result:
    path, sha256, format, target, records_in, rows_loaded, rows_rejected, status."""
    path = Path(path)
    if case.read_only:
        raise LoadError(f"cannot load {path}: the case is open read-only")
    if not path.is_file():
        raise LoadError(f"{path}: no such file", hint="check the path")
    notify = progress or (lambda _msg: None)
    before = _fingerprint(path)
    notify(f"hashing {path.name}")
    facts = sha256_file(path)
    sha, size = facts.sha256, facts.size
    con = case.con
    known = con.execute("SELECT evidence_id, format, target, rows_loaded, rows_rejected "
                        "FROM evidence WHERE sha256 = ?", [sha]).fetchall()
    if known:
        ev, fmt, target, n_ok, n_bad = known[0]
        return _result(path, sha, size, fmt, target, n_ok + n_bad, 0, 0, "already loaded", ev)
    explicit = mapping_mod.parse_mapping(mapping)
    try:
        reader, forced_target = _resolve_format(path, format)
    except formats.UnknownShape as exc:   # a shape no reader knows: fine, given a mapping
        if not explicit:
            raise
        reader, forced_target = exc.generic, None
    if size == 0:
        raise FormatError(f"{path}: the file is empty", hint="nothing to load")
    notify(f"reading {path.name} as {reader}")
    previous = {name: scalar(con, f"SELECT current_setting('{name}')")
                for name in LOAD_SETTINGS}
    for name, value in {**LOAD_SETTINGS, "memory_limit": _load_memory()}.items():
        con.execute(f"SET {name} = '{value}'")
    clean = readers.precheck_jsonl(con, path, facts.lines) \
        if reader == "jsonl" and forced_target in (None, "events") else None
    job = _Job(path, facts, reader, forced_target, explicit, before, notify)
    try:
        try:
            evidence_id, target, stats = _load_once(con, job, clean)
        except _EngineError:
            if clean is None:
                raise
            # The fast reader refused something the check let through: load the careful
            # way, which explains each bad record.
            evidence_id, target, stats = _load_once(con, job, None)
    finally:
        for name, value in previous.items():
            con.execute(f"SET {name} = '{value}'")
    return _result(path, sha, size, reader, target, stats.records_in, stats.loaded,
                   stats.rejected, "loaded", evidence_id, con)


@dataclass
class _Job:
    """One file to load and what was learnt about it before the transaction."""

    path: Path
    facts: FileFacts
    reader: str
    target: str | None
    mapping: dict[str, str]
    fingerprint: tuple[int, int]
    notify: Callable[[str], None]


def _load_once(con: duckdb.DuckDBPyConnection, job: _Job,
               clean: readers.CleanJsonl | None) -> tuple[int, str, Stats]:
    """Stage, check and commit the file in one transaction: all of it or none of it."""
    path = job.path
    con.execute("BEGIN TRANSACTION")
    try:
        mapping_mod.install_macros(con)
        evidence_id = int(_scalar(con, "SELECT nextval('evidence_seq')"))
        target, resolved = _stage(con, job, clean)
        job.notify(f"committing {path.name}")
        stats = commit_stage(con, evidence_id, job.facts.sha256)
        _check_unchanged(path, job.fingerprint)
        con.execute("INSERT INTO evidence VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [evidence_id, str(path.resolve()), job.facts.sha256, job.facts.size,
                     job.reader, target, LOADER_VERSION,
                     dt.datetime.now(dt.UTC).replace(tzinfo=None), stats.records_in,
                     stats.loaded, stats.rejected, json.dumps(resolved)])
        con.execute("COMMIT")
    except (ForensicsError, KeyboardInterrupt):   # an interrupted load keeps nothing
        con.execute("ROLLBACK")
        raise
    except (duckdb.Error, OSError) as exc:
        con.execute("ROLLBACK")
        raise _EngineError(f"{path}: load failed, nothing from this file was kept: {exc}") \
            from exc
    finally:
        _drop_stage(con)
    return evidence_id, target, stats


class _EngineError(LoadError):
    """The engine failed on the file (as opposed to a problem we diagnosed)."""


def _stage(con: duckdb.DuckDBPyConnection, job: _Job,
           clean: readers.CleanJsonl | None) -> tuple[str, dict[str, list[str]]]:
    vendor = formats.vendor(job.reader)
    if vendor is not None:
        if job.mapping:
            raise MappingError(f"a mapping applies to generic files, not to {job.reader}")
        vendor.stage(con, job.path)
        return _vendor_target(con), {}
    return _stage_generic(con, job.path, job.reader, job.target, job.mapping,
                          job.facts.lines, clean)


def _vendor_target(con: duckdb.DuckDBPyConnection) -> str:
    """What a vendor file held: events, feedback (Langfuse scores, LangSmith feedback,
    evaluation results), or both."""
    held = [name for name in ("events", "feedback")
            if _exists(con, f"_stage_{name}")
            and _scalar(con, f"SELECT EXISTS (SELECT 1 FROM _stage_{name})")]
    return "+".join(held) or "events"


def _load_memory() -> str:
    import os
    import re

    value = os.environ.get("FORENSICS_LOAD_MEMORY", LOAD_MEMORY)
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", value, re.IGNORECASE):
        raise LoadError(f"FORENSICS_LOAD_MEMORY={value!r} is not a size like 1GB or 800MB")
    return value


def _check_unchanged(path: Path, before: tuple[int, int]) -> None:
    try:
        after = _fingerprint(path)
    except OSError as exc:
        raise LoadError(f"{path}: the file disappeared during the load; nothing was kept",
                        hint="load it again once it is in place") from exc
    if after != before:
        raise LoadError(f"{path}: the file changed during the load; nothing was kept",
                        hint="load a stable copy of the file")


def _result(path: Path, sha: str, size: int, fmt: str, target: str, records_in: int,
            loaded: int, rejected: int, status: str, evidence_id: int,
            con: duckdb.DuckDBPyConnection | None = None) -> LoadResult:
    df = pl.DataFrame([{"path": str(path), "sha256": sha, "bytes": size, "format": fmt,
                        "target": target, "records_in": records_in, "rows_loaded": loaded,
                        "rows_rejected": rejected, "status": status,
                        "evidence_id": evidence_id}])
    meta: dict[str, Any] = {}
    if con is not None and rejected:
        sample = con.execute("SELECT locator, reason FROM rejects WHERE evidence_id = ? "
                             "LIMIT 5", [evidence_id]).fetchall()
        meta["first_rejects"] = [f"{path}: {loc}: {why}" for loc, why in sample]
    return LoadResult(df, sql="SELECT * FROM evidence WHERE sha256 = $sha",
                      params={"sha": sha}, title=f"load {path.name}", meta=meta)


def load_files(case: CaseHandle, paths: list[str | Path], format: str | None = None,
               mapping: dict[str, Any] | str | Path | None = None,
               progress: Callable[[str], None] | None = None) -> LoadResult:
    """Load several files; one transaction each. Stops at the first file-level error."""
    results = [load_file(case, p, format=format, mapping=mapping, progress=progress)
               for p in paths]
    df = pl.concat([r.df for r in results]) if results else pl.DataFrame()
    meta = {"first_rejects": [m for r in results for m in r.meta.get("first_rejects", [])]}
    return LoadResult(df, sql="SELECT * FROM evidence WHERE sha256 IN $shas",
                      params={"shas": df["sha256"].to_list() if results else []},
                      title="load", meta=meta if meta["first_rejects"] else {})


__all__ = ["LOADER_VERSION", "commit_stage", "load_file", "load_files"]

"""Loading evidence into the case: one file, one transaction, nothing lost.

The steps, all set-based SQL in DuckDB:

1. :mod:`forensics.ingest.source` resolves the path (taken literally; symlinks followed
   and recorded, system files refused) and, in one read, hashes the file and copies it
   into the case's work folder: everything after reads that copy, so the rows loaded are
   always those of the sha256 recorded;
2. the identity of a load is the sha256 and how the file is read (format, target,
   mapping): the same file read the same way adds nothing, a file whose loads rejected
   records or loaded nothing can be read again another way;
3. a reader stages it: container readers (JSONL, JSON, CSV, Parquet) plus a mapping, or a
   vendor reader (OTLP, OpenInference, Langfuse, ...), into ``_stage_*`` temp tables;
   what a generic file holds (events, changes, feedback) is decided by its records;
4. :func:`commit_stage` checks each staged record (timestamp and its range, numbers,
   duplicate ids), appends the good ones to the canonical tables, the others to
   ``rejects``;
5. the ``evidence`` row records path, sha256, bytes, format, counts, the mapping chosen,
   how the file was read and the symlink named. A load that kept no row says so
   (status ``nothing loaded``).

Records in = rows loaded + rows rejected, for every file.

>>> _ = Path("audit.jsonl").write_text(json.dumps({"ts": "2026-03-02T10:00:00Z",
...     "request": {"user": {"id": "u-1"}}, "model": "gpt-4o", "output": "Hello"}))
>>> with forensics.open("new.duckdb") as new:
...     loaded = new.load("audit.jsonl", mapping={"user_id": "request.user.id"})
...     row = new.sql("SELECT user_id, model, output_text FROM events").df.row(0)
>>> loaded.df.select("format", "target", "rows_loaded", "rows_rejected").row(0)
('json', 'events', 1, 0)
>>> row
('u-1', 'gpt-4o', 'Hello')
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.core import workdir
from forensics.core.db import scalar, temp_exists
from forensics.core.errors import (
    ForensicsError,
    FormatError,
    LoadError,
    MappingError,
    NothingLoadedError,
    is_interrupt,
)
from forensics.core.handle import CaseHandle
from forensics.core.result import Result
from forensics.ingest import attach as attach_mod
from forensics.ingest import mapping as mapping_mod
from forensics.ingest import readers
from forensics.ingest import source as source_mod
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
    """What one record is, from its keys: a change, a feedback signal, or an event."""
    lowered = {k.lower() for k in keys}
    has_text = lowered & {"output_text", "output", "completion", "response", "input_text",
                          "input", "prompt", "messages", "span_id", "model"}
    versioned = lowered & {"to_version", "to", "new_version", "version"}
    changey = lowered & {"kind", "change_id", "from", "from_version", "old_version"}
    if not has_text and ({"to_version", "kind"} <= lowered or {"from", "to"} <= lowered
                         or (versioned and changey)):
        return "changes"
    if not has_text and lowered & {"value", "rating", "thumbs", "score", "verdict"} and \
            lowered & {"event_id", "trace_id", "request_id", "user_id"}:
        return "feedback"
    return "events"


def target_from_key_sets(groups: list[tuple[int, list[str]]]) -> str:
    """What a file holds, decided by its records: each distinct key set (with the number
    of records that have it) votes for what it looks like, and the majority of records
    wins, events on a tie. One stray ``to_version`` never makes a change log.

    >>> target_from_key_sets([(999, ["ts", "model", "output"]),
    ...                       (1, ["ts", "kind", "to_version"])])
    'events'
    >>> target_from_key_sets([(5, ["ts", "kind", "to_version"])])
    'changes'
    """
    votes: dict[str, int] = {}
    for count, keys in groups:
        target = _target_from_keys(set(keys or []))
        votes[target] = votes.get(target, 0) + int(count)
    best = max(votes.values(), default=0)
    winners = [t for t in TARGETS if votes.get(t) == best]
    return "events" if not winners or "events" in winners else winners[0]


def _resolve_format(path: Path, format: str | None) -> tuple[str, str | None]:
    """(reader name, forced target or None). ``--format events`` / ``changes`` /
    ``feedback`` says what the file holds and leaves how to read it to detection."""
    if format in TARGETS:
        detected = detect_format(path)
        if format != "events" and formats.vendor(detected):
            detected = container_of(path)
        return detected, format
    if format is None:
        return detect_format(path), None
    if format in GENERIC or formats.vendor(format):
        _check_format_fits(path, format)
        return format, None
    known = ", ".join([*GENERIC, *TARGETS, *formats.vendor_names()])
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

def detect_format(path: Path) -> str:
    """The reader for ``path``; a file that cannot even be looked at is a FormatError
    naming it and why (a JSON document nested too deeply, a damaged Parquet footer)."""
    try:
        return formats.detect_format(path)
    except ForensicsError:
        raise
    except (duckdb.Error, OSError, UnicodeError, ValueError, RecursionError, EOFError) as exc:
        raise FormatError(f"{path}: cannot read the file to detect its format: "
                          f"{_first_line(exc)}",
                          hint="the file is damaged, or not what its name says") from exc


def container_of(path: Path) -> str:
    """jsonl / json / csv / parquet: how ``path`` holds its records, vendors aside."""
    head = formats.read_head(path)
    stripped = head.text.lstrip()
    if head.is_parquet:
        return "parquet"
    if not stripped:
        raise FormatError(f"{path}: the file is empty", hint="nothing to load")
    if stripped[0] not in "[{":
        return "csv"
    return "json" if head.whole else "jsonl"


def _stage_generic(con: duckdb.DuckDBPyConnection, snap: source_mod.Snapshot, reader: str,
                   target: str | None, mapping: dict[str, str],
                   clean: readers.CleanJsonl | None = None) -> tuple[str, dict[str, list[str]]]:
    path = snap.staged
    if clean is not None:
        readers.lazy_records(con, path)
    elif reader == "jsonl":
        readers.stage_jsonl(con, path, lines=snap.lines, long_lines=snap.long_lines)
    else:
        readers.CONTAINERS[reader](con, path)
    if target is None:
        groups = list(clean.groups) if clean else mapping_mod.key_sets(con)
        target = _target_from_mapping(mapping) if mapping else target_from_key_sets(groups)
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
                 -- what Python (and so every later stage) can hold: years 1 to 9999
                 WHEN NOT isfinite(s.ts) OR s.ts < TIMESTAMP '0001-01-01'
                      OR s.ts >= TIMESTAMP '9999-12-31 23:59:59.999999'
                     THEN 'timestamp out of range (years 1 to 9999): '
                          || coalesce(left(s._ts_raw, 80), s.ts::VARCHAR)
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
    path, sha256, format, target, records_in, rows_loaded, rows_rejected, status
    (``loaded``, ``already loaded`` or ``nothing loaded``), mapping, link."""
    if case.read_only:
        raise LoadError(f"cannot load {path}: the case is open read-only")
    source = source_mod.resolve(path)
    notify = progress or (lambda _msg: None)
    explicit = mapping_mod.parse_mapping(mapping)
    work = workdir.session_dir(case.path)
    notify(f"hashing {source.given.name}")
    snap = source_mod.snapshot(source, work / "snapshots", readers.MAX_LINE_BYTES)
    try:
        return _load_snapshot(case, snap, format, explicit, notify, work)
    except ForensicsError as exc:
        raise _named(exc, snap) from exc
    finally:
        snap.staged.unlink(missing_ok=True)


def _named(exc: ForensicsError, snap: source_mod.Snapshot) -> ForensicsError:
    """The error with the file's own name where the readers saw the snapshot's."""
    staged, given = str(snap.staged), str(snap.source.given)
    if staged in exc.message or staged in exc.hint:
        exc.message = exc.message.replace(staged, given)
        exc.hint = exc.hint.replace(staged, given)
        exc.args = (exc.message, *exc.args[1:])
    return exc


def _read_as(reader: str, target: str | None, explicit: dict[str, str]) -> str:
    """How a file is read, the second half of a load's identity (the sha256 is the first)."""
    return json.dumps({"format": reader, "target": target, "mapping": explicit},
                      sort_keys=True)


def _earlier(con: duckdb.DuckDBPyConnection, sha: str, read_as: str) -> tuple[Any, ...] | None:
    """The earlier load that makes this one add nothing: the same file read the same way,
    or read cleanly before (all records in, none rejected) in any way, which a second
    reading would count twice. A file whose loads rejected records or loaded nothing can
    be read again another way."""
    rows = con.execute(
        "SELECT evidence_id, format, target, records_in, rows_loaded, rows_rejected, "
        "coalesce(read_as, json_object('format', format, 'mapping', json_object(), "
        "'target', NULL)::VARCHAR) FROM evidence WHERE sha256 = ? ORDER BY evidence_id",
        [sha]).fetchall()
    wanted = json.loads(read_as)
    same = [r for r in rows if json.loads(r[6]) == wanted]
    clean = [r for r in rows if r[5] == 0 and r[4] > 0]
    found = same or clean
    return found[0] if found else None


def _load_snapshot(case: CaseHandle, snap: source_mod.Snapshot, format: str | None,
                   explicit: dict[str, str], notify: Callable[[str], None],
                   work: Path) -> LoadResult:
    con, path = case.con, snap.staged
    try:
        reader, forced_target = _resolve_format(path, format)
    except formats.UnknownShape as exc:   # a shape no reader knows: fine, given a mapping
        if not explicit:
            raise
        reader, forced_target = exc.generic, None
    read_as = _read_as(reader, forced_target, explicit)
    known = _earlier(con, snap.sha256, read_as)
    if known is not None:
        ev, fmt, target, n_in, n_ok, _, how = known
        result = _result(snap, fmt, target, n_in, 0, 0, "already loaded", ev, {})
        if json.loads(how) != json.loads(read_as):
            result.meta["hint"] = (f"evidence {ev} read this file cleanly ({n_ok} rows, "
                                   "none rejected); reading it again another way would "
                                   "count its records twice")
        return result
    if snap.size == 0:
        raise FormatError(f"{path}: the file is empty", hint="nothing to load")
    notify(f"reading {snap.source.given.name} as {reader}")
    previous = {name: scalar(con, f"SELECT current_setting('{name}')")
                for name in LOAD_SETTINGS}
    spill = work / "spill"
    spill.mkdir(exist_ok=True)
    settings = {**LOAD_SETTINGS, "memory_limit": _load_memory(), "temp_directory": str(spill)}
    previous["temp_directory"] = scalar(con, "SELECT current_setting('temp_directory')")
    for name, value in settings.items():
        _set(con, name, value)
    clean = readers.precheck_jsonl(con, path, snap.lines) \
        if reader == "jsonl" and forced_target in (None, "events") else None
    job = _Job(snap, reader, forced_target, explicit, read_as, notify)
    reshadow = attach_mod.unshadow(con)   # append to the case's tables, not the view
    try:
        try:
            evidence_id, target, stats, resolved = _load_once(con, job, clean)
        except _EngineError:
            if clean is None:
                raise
            # The fast reader refused something the check let through: load the careful
            # way, which explains each bad record.
            evidence_id, target, stats, resolved = _load_once(con, job, None)
    finally:
        reshadow()
        for name, value in previous.items():
            _set(con, name, value)
    status = "loaded" if stats.loaded else "nothing loaded"
    return _result(snap, reader, target, stats.records_in, stats.loaded, stats.rejected,
                   status, evidence_id, resolved, con)


def _set(con: duckdb.DuckDBPyConnection, name: str, value: Any) -> None:
    """A setting of the loading connection (a name of ours, a value bound as text)."""
    try:
        con.execute(f"SET {name} = ?", [str(value)])
    except duckdb.Error:
        if name != "temp_directory":   # DuckDB keeps the folder it has spilled to already
            raise


@dataclass
class _Job:
    """One file to load and what was learnt about it before the transaction."""

    snap: source_mod.Snapshot
    reader: str
    target: str | None
    mapping: dict[str, str]
    read_as: str
    notify: Callable[[str], None]


def _load_once(con: duckdb.DuckDBPyConnection, job: _Job, clean: readers.CleanJsonl | None,
               ) -> tuple[int, str, Stats, dict[str, list[str]]]:
    """Stage, check and commit the file in one transaction: all of it or none of it."""
    snap = job.snap
    con.execute("BEGIN TRANSACTION")
    try:
        mapping_mod.install_macros(con)
        evidence_id = int(_scalar(con, "SELECT nextval('evidence_seq')"))
        target, resolved = _stage(con, job, clean)
        job.notify(f"committing {snap.source.given.name}")
        stats = commit_stage(con, evidence_id, snap.sha256)
        con.execute(
            "INSERT INTO evidence (evidence_id, path, sha256, bytes, format, target, "
            "loader_version, loaded_at, records_in, rows_loaded, rows_rejected, mapping, "
            "read_as, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [evidence_id, str(snap.source.real), snap.sha256, snap.size, job.reader, target,
             LOADER_VERSION, dt.datetime.now(dt.UTC).replace(tzinfo=None), stats.records_in,
             stats.loaded, stats.rejected, json.dumps(resolved), job.read_as,
             snap.source.link])
        con.execute("COMMIT")
    except (ForensicsError, KeyboardInterrupt):   # an interrupted load keeps nothing
        con.execute("ROLLBACK")
        raise
    except RuntimeError as exc:
        con.execute("ROLLBACK")
        if is_interrupt(exc):       # Ctrl-C inside a DuckDB statement
            raise KeyboardInterrupt from exc
        if not isinstance(exc, RecursionError):
            raise
        raise _EngineError(f"{snap.staged}: load failed, nothing from this file was kept: "
                           f"{_first_line(exc)}") from exc
    except (duckdb.Error, OSError) as exc:
        con.execute("ROLLBACK")
        raise _EngineError(f"{snap.staged}: load failed, nothing from this file was kept: "
                           f"{_first_line(exc)}") from exc
    finally:
        _drop_stage(con)
    return evidence_id, target, stats, resolved


def _first_line(exc: BaseException) -> str:
    """An engine error's first line (DuckDB appends the whole offending line and its
    options, which can be megabytes)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


class _EngineError(LoadError):
    """The engine failed on the file (as opposed to a problem we diagnosed)."""


def _stage(con: duckdb.DuckDBPyConnection, job: _Job,
           clean: readers.CleanJsonl | None) -> tuple[str, dict[str, list[str]]]:
    vendor = formats.vendor(job.reader)
    if vendor is not None:
        if job.mapping:
            raise MappingError(f"a mapping applies to generic files, not to {job.reader}")
        vendor.stage(con, job.snap.staged)
        return _vendor_target(con), {}
    return _stage_generic(con, job.snap, job.reader, job.target, job.mapping, clean)


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


def _result(snap: source_mod.Snapshot, fmt: str, target: str, records_in: int,
            loaded: int, rejected: int, status: str, evidence_id: int,
            resolved: dict[str, list[str]],
            con: duckdb.DuckDBPyConnection | None = None) -> LoadResult:
    path = snap.source.given
    df = pl.DataFrame([{"path": str(path), "sha256": snap.sha256, "bytes": snap.size,
                        "format": fmt, "target": target, "records_in": records_in,
                        "rows_loaded": loaded, "rows_rejected": rejected, "status": status,
                        "evidence_id": evidence_id,
                        "mapping": json.dumps(mapping_mod.readable(resolved)),
                        "link": snap.source.link}])
    meta: dict[str, Any] = {}
    if con is not None and rejected:
        sample = con.execute("SELECT locator, reason FROM rejects WHERE evidence_id = ? "
                             "ORDER BY rowid LIMIT 5", [evidence_id]).fetchall()
        meta["first_rejects"] = [f"{path}: {loc}: {why}" for loc, why in sample]
    if status == "nothing loaded":
        meta["hint"] = (f"{path}: nothing loaded ({records_in} records read, {rejected} "
                        f"rejected, as {fmt} -> {target}); " + NOTHING_HINT)
    return LoadResult(df, sql="SELECT * FROM evidence WHERE sha256 = $sha",
                      params={"sha": snap.sha256}, title=f"load {path.name}", meta=meta)


NOTHING_HINT = ("see `rejects` for why; load it again with --format (jsonl, json, csv, "
                "parquet, events, changes, feedback or a vendor format) or a --mapping "
                "naming the fields that hold ts, input_text, output_text...")


def load_files(case: CaseHandle, paths: list[str | Path], format: str | None = None,
               mapping: dict[str, Any] | str | Path | None = None,
               progress: Callable[[str], None] | None = None) -> LoadResult:
    """Load several files; one transaction each. Stops at the first file-level error,
    which then names the files committed before it (``error.committed`` holds their
    result rows)."""
    results: list[LoadResult] = []
    for p in paths:
        try:
            results.append(load_file(case, p, format=format, mapping=mapping,
                                     progress=progress))
        except ForensicsError as exc:
            raise _stopped(exc, results, paths) from exc
    df = pl.concat([r.df for r in results]) if results else pl.DataFrame()
    meta: dict[str, Any] = {}
    firsts = [m for r in results for m in r.meta.get("first_rejects", [])]
    if firsts:
        meta["first_rejects"] = firsts
    hints = [r.meta["hint"] for r in results if "hint" in r.meta]
    if hints:
        meta["hints"] = hints
    return LoadResult(df, sql="SELECT * FROM evidence WHERE sha256 IN $shas",
                      params={"shas": df["sha256"].to_list() if results else []},
                      title="load", meta=meta)


def require_rows(result: LoadResult) -> LoadResult:
    """``result``, or a :class:`NothingLoadedError` when a file in it yielded no rows:
    the CLI's exit status says whether the load did what was asked."""
    empty = [r for r in result.rows() if r["status"] == "nothing loaded"]
    if not empty:
        return result
    told = "; ".join(f"{r['path']}: {r['status']} ({r['rows_loaded']} rows, "
                     f"{r['rows_rejected']} rejected, read as {r['format']} -> {r['target']}, "
                     f"evidence {r['evidence_id']})" for r in result.rows())
    firsts = result.meta.get("first_rejects", [])[:3]
    if firsts:
        told += ". First rejects: " + "; ".join(firsts)
    raise NothingLoadedError(told, hint=NOTHING_HINT)


def _stopped(exc: ForensicsError, done: list[LoadResult],
             paths: list[str | Path]) -> ForensicsError:
    """``exc`` told with what was committed before it, and what was not attempted."""
    rows = [row for r in done for row in r.rows()]
    rest = [str(p) for p in paths[len(done) + 1:]]
    if rows or rest:
        kept = "; ".join(f"{r['path']} ({r['status']}, evidence {r['evidence_id']}, "
                         f"{r['rows_loaded']} rows)" for r in rows) or "nothing"
        exc.message += f". Committed before it stopped: {kept}"
        if rest:
            exc.message += f". Not attempted: {', '.join(rest)}"
        exc.args = (exc.message, *exc.args[1:])
    exc.committed = rows  # type: ignore[attr-defined]
    return exc


__all__ = ["LOADER_VERSION", "commit_stage", "load_file", "load_files", "require_rows"]

"""OTLP/JSON: what the OpenTelemetry Collector's file exporter writes.

One ``TracesData`` or ``LogsData`` per line (or one document): ``resourceSpans`` /
``scopeSpans`` / ``spans``, also ``batches`` and ``instrumentationLibrarySpans`` from older
producers; ids in hex or base64, int64 as decimal strings, enums as names or numbers.
Log records carrying GenAI events (``gen_ai.user.message``, ``gen_ai.choice``,
``gen_ai.client.inference.operation.details``, ...) join their span by trace and span id;
those without a span in the file become one event per span id.
``gen_ai.evaluation.result`` events become ``feedback``.

A record is a span (with the log records of its events), a group of log records of one
span id that has no span in the file, a log record without a span id, or a line that
holds no TracesData / LogsData at all (rejected).

>>> def attr(key, value):
...     return {"key": key, "value": {"stringValue": value}}
>>> span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "051581bf3cb55c13",
...         "name": "chat gpt-4o", "startTimeUnixNano": "1772445600000000000",
...         "endTimeUnixNano": "1772445601000000000",
...         "attributes": [attr("gen_ai.operation.name", "chat"),
...                        attr("gen_ai.request.model", "gpt-4o"),
...                        {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}}]}
>>> doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
>>> _ = Path("otel-traces.jsonl").write_text(json.dumps(doc))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("otel-traces.jsonl").df["format"][0]
...     row = new.sql("SELECT kind, model, input_tokens, duration_ms FROM events").df.row(0)
>>> fmt, row
('otlp', ('llm', 'gpt-4o', 12, 1000.0))
"""

from __future__ import annotations

import gzip
import json
import queue
import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from forensics.core.db import temp_exists
from forensics.core.errors import LoadError
from forensics.ingest import readers
from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    RAW,
    container,
    drop_records,
    ensure_rejects,
    install,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import (
    finish_spans,
    flatten_spans,
    flatten_statement,
    stage_spans,
)

ANY = {"stringValue": "VARCHAR", "boolValue": "VARCHAR", "intValue": "VARCHAR",
       "doubleValue": "VARCHAR", "bytesValue": "VARCHAR", "arrayValue": "JSON",
       "kvlistValue": "JSON"}
KV = [{"key": "VARCHAR", "value": ANY}]
SCOPE = {"name": "VARCHAR", "version": "VARCHAR", "attributes": KV,
         "droppedAttributesCount": "BIGINT"}
RESOURCE = {"attributes": KV, "droppedAttributesCount": "BIGINT"}
EVENT = {"timeUnixNano": "VARCHAR", "name": "VARCHAR", "attributes": KV,
         "droppedAttributesCount": "BIGINT"}
SPAN = {"traceId": "VARCHAR", "spanId": "VARCHAR", "parentSpanId": "VARCHAR",
        "traceState": "VARCHAR", "flags": "VARCHAR", "name": "VARCHAR", "kind": "VARCHAR",
        "startTimeUnixNano": "VARCHAR", "endTimeUnixNano": "VARCHAR", "attributes": KV,
        "droppedAttributesCount": "BIGINT", "events": [EVENT], "droppedEventsCount": "BIGINT",
        "links": "JSON", "droppedLinksCount": "BIGINT",
        "status": {"code": "VARCHAR", "message": "VARCHAR"}}
LOG = {"timeUnixNano": "VARCHAR", "observedTimeUnixNano": "VARCHAR",
       "severityNumber": "VARCHAR", "severityText": "VARCHAR", "body": "JSON",
       "attributes": KV, "droppedAttributesCount": "BIGINT", "flags": "VARCHAR",
       "traceId": "VARCHAR", "spanId": "VARCHAR", "eventName": "VARCHAR"}
# Spans are kept as JSON text when a line is parsed, and parsed one by one once unnested:
# a line of thousands of spans parsed whole takes ten times its size.
DOC = {
    "resourceSpans": [{"resource": RESOURCE, "schemaUrl": "VARCHAR",
                       "scopeSpans": [{"scope": SCOPE, "schemaUrl": "VARCHAR",
                                       "spans": ["JSON"]}],
                       "instrumentationLibrarySpans": [{"instrumentationLibrary": SCOPE,
                                                        "schemaUrl": "VARCHAR",
                                                        "spans": ["JSON"]}]}],
    "resourceLogs": [{"resource": RESOURCE, "schemaUrl": "VARCHAR",
                      "scopeLogs": [{"scope": SCOPE, "schemaUrl": "VARCHAR",
                                     "logRecords": [LOG]}],
                      "instrumentationLibraryLogs": [{"instrumentationLibrary": SCOPE,
                                                      "schemaUrl": "VARCHAR",
                                                      "logRecords": [LOG]}]}],
}
DOC["batches"] = DOC["resourceSpans"]
GENAI_LOG_EVENTS = ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
                    "gen_ai.tool.message", "gen_ai.choice",
                    "gen_ai.client.inference.operation.details")
EVALUATION = "gen_ai.evaluation.result"


def _doc_keys(d: Any) -> bool:
    return isinstance(d, dict) and bool({"resourceSpans", "resourceLogs", "batches"} & set(d))


class OtlpReader:
    name = "otlp"
    description = ("OTLP/JSON traces and logs (OpenTelemetry Collector file exporter), any "
                   "GenAI semantic-conventions version, OpenInference attributes")

    def sniff(self, head: Head) -> bool:
        # a Collector line holding thousands of spans is longer than the sniffed head
        return not head.is_parquet and (sniff_any(head, _doc_keys) or bool(re.match(
            r'\s*\[?\s*\{\s*"(resourceSpans|resourceLogs|batches)"\s*:', head.text)))

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_otlp(con, path)


# Lines are parsed in batches of about this much JSON text: a Collector line may hold
# thousands of spans, and a parsed batch must fit the load's memory limit. The size of a
# line is estimated from the file's (a full scan of the lines' text to measure each would
# hold a vector of 2,048 of them at once).
BATCH_BYTES = 32 << 20
COMPRESSED = (".gz", ".zst", ".zstd")
NOT_OTLP = "not OTLP/JSON: no resourceSpans, batches or resourceLogs list"
# a line opening with an OTLP list (else its keys are looked up)
KNOWN_START = '^\\s*\\{\\s*"(resourceSpans|batches|resourceLogs)"\\s*:\\s*\\['
# an attribute value holding a kvlist, or an array of containers (rare: such values need
# the set-based deep conversion of deep_values)
DEEP = '"kvlistValue"|"values"\\s*:\\s*\\[\\s*\\{\\s*"(arrayValue|kvlistValue)"'


def stage_otlp(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``path`` -> spans and log records -> ``_spans`` (+ ``_stage_feedback``) -> the
    ``_stage_*`` tables. JSON Lines of spans stream through in chunks of lines
    (:func:`_stream`); a file holding log records, a single document or a .zst file is
    staged whole first and parsed in batches of lines (:func:`_stage_staged`)."""
    install(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _stage_rejects (locator VARCHAR, "
                "reason VARCHAR, raw VARCHAR)")
    streamable = container(path) == "jsonl" and not path.name.lower().endswith(STAGED_ONLY)
    if not (streamable and _stream(con, path)):
        _stage_staged(con, path)


def _stage_staged(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    records(con, path)
    ensure_rejects(con)
    batches = _line_batches(con, path)
    deep = _parse_batches(con, batches)
    _logs_table(con)
    _merge_logs(con, deep=deep)
    stage_spans(con, raw_sql=lambda c: _raw_queries(c, batches))
    _evaluations(con)
    drop_records(con)


# Python cannot decompress these here; such files are staged whole instead of streamed.
STAGED_ONLY = (".zst", ".zstd")
BLANK = "regexp_full_match(raw, '\\s*')"
OBJECT = "regexp_matches(raw, '^\\s*\\{')"


def _lines_cte(first: int) -> str:
    """``_lines(line, raw)``: the lines of the chunk of text given as the parameter."""
    return (f"_lines AS (SELECT {first} + n - 1 AS line, rtrim(raw, chr(13)) AS raw "
            f"FROM unnest(string_split(?, chr(10))) WITH ORDINALITY AS t(raw, n))")


def _stream(con: duckdb.DuckDBPyConnection, path: Path) -> bool:
    """JSON Lines of TracesData, chunk by chunk of about BATCH_BYTES of lines: nothing of
    the file is kept but the flattened spans ``_sx``. Each chunk's lines are parsed into
    spans on a connection of their own (:class:`_LineParser`, one per DuckDB thread, the
    chunks in parallel); the spans of several chunks are then flattened in one statement
    (:meth:`_Parsed.flush`), which DuckDB runs on every thread. Chunks whose values nest
    containers go to ``_otlp_special`` and the batch path. Returns False, having undone
    its work, at the first log record: logs join spans anywhere in the file, so such a
    file is staged whole."""
    threads = _stream_threads(con)
    before = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    con.execute(f"SET threads = {threads}")
    try:
        return _stream_chunks(con, path, threads)
    finally:
        con.execute(f"SET threads = {before}")


def _stream_chunks(con: duckdb.DuckDBPyConnection, path: Path, threads: int) -> bool:
    parsers: queue.Queue[_LineParser] = queue.Queue()
    for _ in range(threads):
        parsers.put(_LineParser(con))
    special, ok = False, True
    try:
        parsed = _Parsed(con, _parse_with(parsers, 1, "")[1])
        with ThreadPoolExecutor(threads) as pool:
            wave: list[Future[tuple[list[tuple[str, str, str]], pa.Table]]] = []
            for first, text in _chunks(con, path, rejects=True):
                if '"resourceLogs"' in text:
                    ok = False
                    break
                if DEEP_RE.search(text):
                    special = _keep_special(con, first, text, special)
                    continue
                wave.append(pool.submit(_parse_with, parsers, first, text))
                if len(wave) == threads:   # a wave of chunks parsed, then maybe flattened
                    parsed.add_wave(wave)
                    wave = []
            if ok:
                parsed.add_wave(wave)
                parsed.flush()
    finally:
        while not parsers.empty():
            parsers.get().close()
    if not ok:
        for name in ("_sx", "_otlp_special"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        con.execute("DELETE FROM _stage_rejects")
        return False
    if special:
        con.execute("CREATE OR REPLACE TEMP VIEW _stage_records AS SELECT * FROM _otlp_special")
        _parse_batches(con, _line_batches(con, path), keep_text=True)
        _logs_table(con)
        _merge_logs(con, deep=True, raw="_sp")
        flatten_spans(con, append=True)
        con.execute("DROP VIEW _stage_records")
        con.execute("DROP TABLE _otlp_special")
    readers._explain_json_rejects(con)   # the precise reason of each invalid line
    finish_spans(con, raw_sql=lambda c: _reread_raws(c, path))
    return True


# DEEP, searched for in a chunk's text
DEEP_RE = re.compile(DEEP)
# Spans flattened per statement: many, for each statement takes a second to plan; few
# enough to bound the memory their text takes while they wait.
FLUSH_SPANS = 100_000
# DuckDB memory one thread takes to flatten spans (or to parse a chunk of lines): the
# threads used are capped so that they fit in the load's memory limit.
THREAD_MEMORY = 320 << 20


def _stream_threads(con: duckdb.DuckDBPyConnection) -> int:
    """The DuckDB threads, capped by the memory limit (see THREAD_MEMORY)."""
    threads, limit = con.execute("SELECT current_setting('threads')::BIGINT, "
                                 "current_setting('memory_limit')").fetchall()[0]
    return max(1, min(int(threads), _size(str(limit)) // THREAD_MEMORY))


def _size(text: str) -> int:
    """``953.6 MiB`` (a DuckDB memory setting) -> bytes."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(?:([KMGTP]?)(i?)B|bytes)\s*", text, re.IGNORECASE)
    if not m:
        return 1 << 62      # no limit stated
    power = " KMGTP".index((m.group(2) or " ").upper())
    return int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)


def _keep_special(con: duckdb.DuckDBPyConnection, first: int, text: str, started: bool) -> bool:
    """The lines of a chunk whose values nest containers -> ``_otlp_special``."""
    verb = "INSERT INTO _otlp_special" if started else \
        "CREATE OR REPLACE TEMP TABLE _otlp_special AS"
    con.execute(f"{verb} WITH {_lines_cte(first)} SELECT line AS _ord, 'line ' || line "
                f"AS locator, raw AS j FROM _lines WHERE NOT {BLANK} AND {OBJECT} "
                f"AND json_valid(raw)", [text])
    return True


class _LineParser:
    """A connection of its own that parses chunks of lines into span rows (the span
    still JSON text ``_sp``) and the reasons of the lines that hold no spans."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con.cursor()
        install(self.con)
        self.doc = json.dumps({k: DOC[k] for k in ("resourceSpans", "batches")})

    def parse(self, first: int, text: str) -> tuple[list[tuple[str, str, str]], pa.Table]:
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE _chunk AS WITH {_lines_cte(first)} "
                    f"SELECT line, raw, try(from_json(raw, '{self.doc}')) AS d FROM _lines "
                    f"WHERE NOT {BLANK}", [text])
        rejected = con.execute(f"""
            SELECT 'line ' || line,
                   CASE WHEN NOT json_valid(raw) THEN 'invalid JSON'
                        WHEN json_type(raw) <> 'OBJECT'
                        THEN 'record is a JSON ' || lower(json_type(raw)) || ', not an object'
                        ELSE '{NOT_OTLP}' END,
                   left(raw, {RAW})
            FROM _chunk WHERE d IS NULL OR (d.resourceSpans IS NULL AND d.batches IS NULL)
            ORDER BY line
        """).fetchall()
        spans = con.sql(f"WITH _otlp AS (SELECT line, 'line ' || line AS locator, d FROM _chunk "
                        f"WHERE d.resourceSpans IS NOT NULL OR d.batches IS NOT NULL) "
                        f"{_span_unnest(keep_text=True, parse=False)}"
                        ).to_arrow_table(ARROW_BATCH)
        con.execute("DROP TABLE _chunk")
        return rejected, spans

    def close(self) -> None:
        self.con.close()


# rows per Arrow batch handed back: DuckDB scans an Arrow table a batch per thread
ARROW_BATCH = 8192


def _parse_with(parsers: queue.Queue[_LineParser], first: int,
                text: str) -> tuple[list[tuple[str, str, str]], pa.Table]:
    parser = parsers.get()
    try:
        return parser.parse(first, text)
    finally:
        parsers.put(parser)


class _Parsed:
    """Parsed chunks waiting to be flattened into ``_sx`` (created empty at once)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, empty: pa.Table) -> None:
        """``empty``: a parsed chunk without spans, which gives ``_sx`` its columns."""
        self.con, self.tables, self.rows = con, list[pa.Table](), 0
        self._flatten(empty, append=False)

    def add_wave(self, wave: list[Future[tuple[list[tuple[str, str, str]], pa.Table]]]
                 ) -> None:
        """The results of a wave of parsed chunks, in file order; flattened once enough
        spans wait (never while a chunk is parsed: each takes its memory)."""
        for future in wave:
            rejected, spans = future.result()
            if rejected:
                self.con.executemany("INSERT INTO _stage_rejects VALUES (?, ?, ?)", rejected)
            if spans.num_rows:
                self.tables.append(spans)
                self.rows += spans.num_rows
        if self.rows >= FLUSH_SPANS:
            self.flush()

    def flush(self) -> None:
        if self.tables:
            self._flatten(pa.concat_tables(self.tables), append=True)
        self.tables, self.rows = [], 0

    def _flatten(self, spans: pa.Table, append: bool) -> None:
        # a relation, not a registered view: the load is one transaction, which would
        # keep a dropped view, and the Arrow table it holds, until it ends
        self.con.from_arrow(spans).query("_otlp_parsed", flatten_statement(
            append=append, source=(
                f"_otlp_spans AS (SELECT _ord::HUGEINT AS _ord, line, locator, "
                f"r::STRUCT(k VARCHAR, v JSON)[] AS r, r_dropped, scope_json::JSON AS scope_json, "
                f"schema_url, from_json(_sp, '{json.dumps(SPAN)}') AS sp, _sp "
                f"FROM _otlp_parsed), _spans AS ({_span_rows('_otlp_spans', raw='_sp')}), ")))


def _chunks(con: duckdb.DuckDBPyConnection, path: Path,
            rejects: bool) -> Iterator[tuple[int, str]]:
    """``(first line number, text)`` of consecutive chunks of about BATCH_BYTES of whole
    lines. A line that is not UTF-8 is blanked (and, with ``rejects``, rejected)."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    line, rest = 1, b""
    with opener(path, "rb") as fh:
        while True:
            block = fh.read(BATCH_BYTES)
            data = rest + block if rest else block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            if block and cut == 0:    # a line longer than a chunk: read on
                if len(data) > readers.MAX_LINE_BYTES:
                    raise LoadError(f"{path}: line {line} is longer than "
                                    f"{readers.MAX_LINE_BYTES >> 20} MiB; nothing from this "
                                    "file was kept", hint="split the file")
                rest = data
                continue
            chunk, rest = data[:cut], data[cut:]
            if chunk:
                text = _decode(con, chunk, line, rejects)
                yield line, (text.lstrip("\ufeff") if line == 1 else text)
                line += chunk.count(b"\n")
            if not block:
                return


def _decode(con: duckdb.DuckDBPyConnection, chunk: bytes, first: int, rejects: bool) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out, bad = [], []
    for i, raw in enumerate(chunk.split(b"\n")):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            out.append("")
            bad.append((f"line {first + i}", f"invalid UTF-8: {exc.reason} at byte {exc.start}",
                        raw.decode("utf-8", "replace")[:RAW]))
    if rejects and bad:
        con.executemany("INSERT INTO _stage_rejects VALUES (?, ?, ?)", bad)
    return "\n".join(out)


def _reread_raws(con: duckdb.DuckDBPyConnection, path: Path) -> Iterator[str]:
    """The text of the streamed spans that may be rejected (``_needs_raw``): their lines
    are read again, chunk by chunk, and each span cut out of its line."""
    wanted = sorted(int(r[0]) for r in con.execute(
        "SELECT DISTINCT (_ord >> 66)::BIGINT FROM _needs_raw").fetchall())
    if not wanted:
        return
    for first, text in _chunks(con, path, rejects=False):
        last = first + text.count("\n") - text.endswith("\n")
        here = [ln for ln in wanted if first <= ln <= last]
        if not here:
            continue
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _otlp_raw AS
            WITH {_lines_cte(first)}
            SELECT s._ord, json_extract(l.raw, '$.' || regexp_extract(s.locator, ': ([^ ]+)', 1))
                       AS raw
            FROM (SELECT * FROM _lines WHERE line IN ({', '.join(map(str, here))})) l
            JOIN (SELECT n._ord, s.locator FROM _needs_raw n JOIN _sx s USING (_ord)) s
              ON l.line = (s._ord >> 66)::BIGINT
        """, [text])
        yield "SELECT _ord, raw FROM _otlp_raw"
        if last >= wanted[-1]:
            return


def _line_batches(con: duckdb.DuckDBPyConnection, path: Path) -> list[tuple[int, int]]:
    """``(first, last)`` line numbers of consecutive batches of about BATCH_BYTES."""
    n = int(con.execute("SELECT count(*) FROM _stage_records").fetchall()[0][0])
    size = path.stat().st_size * (8 if path.suffix.lower() in COMPRESSED else 1)
    per = max(1, BATCH_BYTES * n // max(size, 1))
    return [(int(lo), int(hi)) for lo, hi in con.execute(f"""
        SELECT min(_ord), max(_ord) FROM (
            SELECT _ord, (row_number() OVER (ORDER BY _ord) - 1) // {per} AS b
            FROM _stage_records) GROUP BY b ORDER BY b
    """).fetchall()]


def _parse_batches(con: duckdb.DuckDBPyConnection, batches: list[tuple[int, int]],
                   keep_text: bool = False) -> bool:
    """Parse the lines batch by batch: lines holding no OTLP list -> rejects, spans ->
    ``_otlp_spans``, log records -> ``_otlp_log_recs`` (one row each). A loop over
    batches of lines, not over records; each statement streams (no table per batch: the
    load is one transaction, which keeps a dropped table until it ends). Returns whether
    any value nests containers."""
    deep = False
    spans = json.dumps({k: DOC[k] for k in ("resourceSpans", "batches")})
    logs = json.dumps({"resourceLogs": DOC["resourceLogs"]})
    for i, (lo, hi) in enumerate(batches or [(0, -1)]):
        # MATERIALIZED: a condition on j must not become a filter of the table scan,
        # which would read j for every line of the file, not only the batch's
        lines = (f"WITH _b AS MATERIALIZED (SELECT _ord, locator, j::VARCHAR AS j "
                 f"FROM _stage_records WHERE _ord BETWEEN {lo} AND {hi})")
        con.execute(f"""
            INSERT INTO _stage_rejects {lines}
            SELECT locator, '{NOT_OTLP}', left(j, {RAW}) FROM _b
            WHERE NOT regexp_matches(left(j, 100), '{KNOWN_START}')
              AND NOT coalesce(json_type(j, '$.resourceSpans') = 'ARRAY'
                               OR json_type(j, '$.batches') = 'ARRAY'
                               OR json_type(j, '$.resourceLogs') = 'ARRAY', false)
            ORDER BY _ord
        """)
        if not deep:
            deep = bool(con.execute(f"{lines} SELECT coalesce(bool_or(regexp_matches(j, "
                                    f"'{DEEP}')), false) FROM _b").fetchall()[0][0])
        for table, doc, keys, unnest in (
                ("_otlp_spans", spans, ("resourceSpans", "batches"), _span_unnest(keep_text)),
                ("_otlp_log_recs", logs, ("resourceLogs",), _log_unnest())):
            holds = " OR ".join(f"contains(j, '\"{k}\"')" for k in keys)
            verb = f"CREATE OR REPLACE TEMP TABLE {table} AS" if i == 0 else f"INSERT INTO {table}"
            con.execute(f"{verb} {lines}, _otlp AS MATERIALIZED (SELECT _ord AS line, locator, "
                        f"from_json(j, '{doc}') AS d FROM _b WHERE {holds}) {unnest}")
    return deep


def _raw_queries(con: duckdb.DuckDBPyConnection,
                 batches: list[tuple[int, int]]) -> list[str]:
    """The text of the spans and log records that may be rejected (``_needs_raw``): their
    path in their line, read batch by batch of the lines that hold them."""
    lines = {int(r[0]) for r in con.execute(
        "SELECT DISTINCT (_ord >> 66)::BIGINT FROM _needs_raw").fetchall()}
    queries = []
    for lo, hi in batches:
        wanted = sorted(ln for ln in lines if lo <= ln <= hi)
        if wanted:
            queries.append(f"""
                SELECT s._ord, json_extract(r.j, '$.' || regexp_extract(s.locator, ': ([^ ]+)', 1))
                           AS raw
                FROM _needs_raw n JOIN _sx s USING (_ord)
                JOIN (SELECT _ord, j FROM _stage_records
                      WHERE _ord BETWEEN {wanted[0]} AND {wanted[-1]}
                        AND _ord IN ({', '.join(map(str, wanted))})) r
                  ON r._ord = (s._ord >> 66)::BIGINT
            """)
    return queries


def deep_values(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """OTLP AnyValues nested to any depth -> plain JSON, set-based: ``source`` is a query
    yielding ``(id, v)`` (v the AnyValue JSON); the result is ``_any_out(id, j)``. The
    tree is walked top-down by a recursive query, then rebuilt bottom-up one depth level
    per statement."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _any_in AS {source}")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _any_nodes AS
        WITH RECURSIVE nodes(root, path, parent, depth, kind, key, v) AS (
            SELECT id, '', NULL::VARCHAR, 0,
                   CASE WHEN json_exists(v, '$.arrayValue') THEN 'a'
                        WHEN json_exists(v, '$.kvlistValue') THEN 'k' ELSE 's' END,
                   NULL::VARCHAR, v
            FROM _any_in
            UNION ALL
            SELECT root, path || '/' || lpad(i::VARCHAR, 6, '0'), path, depth + 1,
                   CASE WHEN json_exists(cv, '$.arrayValue') THEN 'a'
                        WHEN json_exists(cv, '$.kvlistValue') THEN 'k' ELSE 's' END,
                   item ->> 'key', cv
            FROM (SELECT root, path, depth, kind,
                         unnest(CASE kind WHEN 'a' THEN json_extract(v, '$.arrayValue.values[*]')
                                          ELSE json_extract(v, '$.kvlistValue.values[*]') END)
                             AS item,
                         generate_subscripts(CASE kind
                             WHEN 'a' THEN json_extract(v, '$.arrayValue.values[*]')
                             ELSE json_extract(v, '$.kvlistValue.values[*]') END, 1) AS i
                  FROM nodes WHERE kind <> 's' AND depth < 64),
                 LATERAL (SELECT CASE WHEN kind = 'k' THEN json_extract(item, '$.value')
                                      ELSE item END AS cv))
        SELECT * FROM nodes
    """)
    deepest = con.execute("SELECT coalesce(max(depth), -1) FROM _any_nodes").fetchall()[0][0]
    con.execute("CREATE OR REPLACE TEMP TABLE _any_plain (root HUGEINT, path VARCHAR, "
                "parent VARCHAR, key VARCHAR, depth INTEGER, j VARCHAR)")
    for depth in range(deepest, -1, -1):
        con.execute(f"""
            INSERT INTO _any_plain
            SELECT n.root, n.path, n.parent, n.key, n.depth,
                   CASE n.kind WHEN 's' THEN coalesce(_fx_any0(n.v), 'null'::JSON)::VARCHAR
                        WHEN 'a' THEN '[' || coalesce(string_agg(c.j, ',' ORDER BY c.path), '')
                                      || ']'
                        ELSE '{{' || coalesce(string_agg(to_json(c.key)::VARCHAR || ':' || c.j,
                                                         ',' ORDER BY c.path), '') || '}}' END
            FROM _any_nodes n
            LEFT JOIN _any_plain c ON c.depth = {depth + 1} AND c.root = n.root
                                  AND c.parent = n.path
            WHERE n.depth = {depth}
            GROUP BY n.root, n.path, n.parent, n.key, n.depth, n.kind, n.v
        """)
    con.execute("CREATE OR REPLACE TEMP TABLE _any_out AS SELECT root AS id, j::JSON AS j "
                "FROM _any_plain WHERE depth = 0")
    for name in ("_any_in", "_any_nodes", "_any_plain"):
        con.execute(f"DROP TABLE {name}")


def _span_unnest(keep_text: bool = False, parse: bool = True) -> str:
    """One row per span of the parsed lines ``_otlp``, with its resource, scope and a
    locator down to the span (and, with ``keep_text``, its JSON text ``_sp``; without
    ``parse``, only the text)."""
    text = ", sp AS _sp" if keep_text else ""
    span = ("from_json(sp, '" + json.dumps(SPAN) + "') AS sp" + text) if parse else "sp AS _sp"
    return """
        , rs AS (
            SELECT line, locator,
                   CASE WHEN d.resourceSpans IS NULL THEN 'batches' ELSE 'resourceSpans' END
                       AS rs_key,
                   unnest(coalesce(d.resourceSpans, d.batches)) AS rs,
                   generate_subscripts(coalesce(d.resourceSpans, d.batches), 1) - 1 AS ri
            FROM _otlp WHERE d.resourceSpans IS NOT NULL OR d.batches IS NOT NULL),
        rsx AS (
            SELECT line, locator, rs_key, ri, _fx_attrs(rs.resource.attributes) AS r,
                   rs.resource.droppedAttributesCount AS r_dropped, rs.schemaUrl AS rs_schema,
                   rs.scopeSpans, rs.instrumentationLibrarySpans
            FROM rs),
        ss AS (
            SELECT line, locator, rs_key, ri, r, r_dropped, rs_schema,
                   CASE WHEN scopeSpans IS NULL THEN 'instrumentationLibrarySpans'
                        ELSE 'scopeSpans' END AS ss_key,
                   unnest(coalesce(scopeSpans, list_transform(instrumentationLibrarySpans,
                       lambda x: {'scope': x.instrumentationLibrary, 'schemaUrl': x.schemaUrl,
                                  'spans': x.spans}))) AS ss,
                   generate_subscripts(coalesce(scopeSpans, instrumentationLibrarySpans), 1) - 1
                       AS si
            FROM rsx WHERE scopeSpans IS NOT NULL OR instrumentationLibrarySpans IS NOT NULL),
        scoped AS (
            SELECT *, CASE WHEN ss.scope.name IS NOT NULL OR ss.scope.version IS NOT NULL
                           THEN json_merge_patch('{}', json_object(
                               'name', ss.scope.name, 'version', ss.scope.version,
                               'attributes', CASE WHEN len(ss.scope.attributes) > 0
                                   THEN _fx_kvjson(_fx_attrs(ss.scope.attributes)) END)) END
                       AS scope_json,
                   coalesce(ss.schemaUrl, rs_schema) AS schema_url
            FROM ss)
        SELECT _fx_ord(line, ri, si, pi, 0) AS _ord, line,
               locator || ': ' || rs_key || '[' || ri || '].' || ss_key || '[' || si
                   || '].spans[' || pi || ']' AS locator,
               r, r_dropped, scope_json, schema_url, """ + span + """
        FROM (SELECT *, unnest(ss.spans) AS sp, generate_subscripts(ss.spans, 1) - 1 AS pi
              FROM scoped)
    """


def _log_unnest() -> str:
    """One row per log record of the parsed lines ``_otlp``: attributes, resource and the
    body (an AnyValue, converted at any depth by :func:`deep_values`)."""
    return """
        , rl AS (
            SELECT line, locator, unnest(d.resourceLogs) AS rl,
                   generate_subscripts(d.resourceLogs, 1) - 1 AS ri
            FROM _otlp WHERE d.resourceLogs IS NOT NULL),
        sl AS (
            SELECT line, locator, ri, rl.resource AS res, 'scopeLogs' AS sl_key,
                   unnest(rl.scopeLogs) AS sl, generate_subscripts(rl.scopeLogs, 1) - 1 AS si
            FROM rl WHERE rl.scopeLogs IS NOT NULL
            UNION ALL
            SELECT line, locator, ri, rl.resource, 'instrumentationLibraryLogs',
                   unnest(list_transform(rl.instrumentationLibraryLogs,
                       lambda x: {'scope': x.instrumentationLibrary, 'schemaUrl': x.schemaUrl,
                                  'logRecords': x.logRecords})),
                   generate_subscripts(rl.instrumentationLibraryLogs, 1) - 1
            FROM rl WHERE rl.scopeLogs IS NULL AND rl.instrumentationLibraryLogs IS NOT NULL),
        recs AS (
            SELECT _fx_ord(line, ri, si, li, 1) AS _ord,
                   locator || ': resourceLogs[' || ri || '].' || sl_key || '[' || si
                       || '].logRecords[' || li || ']' AS locator,
                   res, sl.scope AS scope, lr
            FROM (SELECT *, unnest(sl.logRecords) AS lr,
                         generate_subscripts(sl.logRecords, 1) - 1 AS li FROM sl)),
        attrs AS (SELECT *, _fx_attrs(lr.attributes) AS a FROM recs)
        SELECT _ord, locator, _fx_id(lr.traceId) AS trace_id, _fx_id(lr.spanId) AS span_id,
               coalesce(_fx_nanos(lr.timeUnixNano), _fx_nanos(lr.observedTimeUnixNano)) AS ts,
               coalesce(nullif(lr.timeUnixNano, '0'), lr.observedTimeUnixNano) AS _ts_raw,
               coalesce(lr.eventName, _fx_str(_fx_kv(a, 'event.name'))) AS event_name,
               a, lr.attributes AS _kvs, _fx_attrs(res.attributes) AS r, lr.body AS body,
               coalesce(lr.severityText, lr.severityNumber) AS severity,
               json_object('otel.scope', CASE WHEN scope.name IS NOT NULL THEN json_object(
                               'name', scope.name, 'version', scope.version) END,
                           'otel.log.severity', coalesce(lr.severityText, lr.severityNumber),
                           'otel.log.flags', lr.flags) AS extra,
               NULL::VARCHAR AS _reject, NULL::VARCHAR AS _raw
        FROM attrs
    """


def _logs_table(con: duckdb.DuckDBPyConnection) -> None:
    """``_otlp_logs``: the log records with their bodies converted and each as an event
    object ``ev`` ({name, time, attributes, body, severity})."""
    con.execute("CREATE OR REPLACE TEMP TABLE _otlp_logs AS SELECT * FROM _otlp_log_recs")
    con.execute("DROP TABLE _otlp_log_recs")
    if not con.execute("SELECT EXISTS (SELECT 1 FROM _otlp_logs)").fetchall()[0][0]:
        return
    _deepen(con, "_otlp_logs")
    deep_values(con, "SELECT _ord AS id, body AS v FROM _otlp_logs WHERE body IS NOT NULL")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _otlp_logs AS
        SELECT l.* EXCLUDE (body, _kvs),
               json_merge_patch('{}', json_object('name', l.event_name,
                           'time', strftime(l.ts, '%Y-%m-%dT%H:%M:%S.%fZ'),
                           'attributes', _fx_kvjson(list_filter(
                               l.a, lambda e: e.k <> 'event.name')),
                           'body', o.j, 'severity', l.severity)) AS ev
        FROM _otlp_logs l LEFT JOIN _any_out o ON o.id = l._ord
    """)
    con.execute("DROP TABLE _any_out")


def _deepen(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Rewrite the attribute maps ``a`` of ``table`` where a value nests containers."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _deep_src AS
        SELECT row_number() OVER () AS id, _ord, e.key AS key,
               json_merge_patch('{{}}', to_json(e.value)) AS v
        FROM (SELECT _ord, unnest(_kvs) AS e FROM {table})
        WHERE e.value.kvlistValue IS NOT NULL OR e.value.arrayValue IS NOT NULL
    """)
    deep_values(con, "SELECT id, v FROM _deep_src")
    con.execute(f"""
        UPDATE {table} SET a = list_concat(list_filter({table}.a,
                                                       lambda e: NOT list_contains(f.ks, e.k)), f.l)
        FROM (SELECT s._ord, list(s.key) AS ks, list({{'k': s.key, 'v': o.j}}) AS l
              FROM _deep_src s JOIN _any_out o USING (id) GROUP BY s._ord) f
        WHERE {table}._ord = f._ord
    """)
    con.execute("DROP TABLE _deep_src")
    con.execute("DROP TABLE _any_out")


def _span_rows(source: str = "_otlp_spans", raw: str = "NULL::VARCHAR") -> str:
    """The ``_spans`` columns of an OTLP span of ``source`` (see forensics.ingest.vendors.semconv);
    ``raw``: its text, if kept."""
    return f"""
        SELECT _ord, locator, _fx_id(sp.traceId) AS trace_id, _fx_id(sp.spanId) AS span_id,
               _fx_id(sp.parentSpanId) AS parent_id, sp.name AS name,
               sp.startTimeUnixNano AS _ts_raw, _fx_nanos(sp.startTimeUnixNano) AS ts,
               _fx_nanos(sp.endTimeUnixNano) AS end_ts, NULL::VARCHAR AS kind_hint,
               _fx_status(coalesce(sp.status.code, '0')) AS status_code,
               sp.status.message AS status_message,
               a, r,
               CASE WHEN len(sp.events) > 0 THEN list_transform(sp.events, lambda e: json_object(
                   'name', e.name,
                   'time', strftime(_fx_nanos(e.timeUnixNano), '%Y-%m-%dT%H:%M:%S.%fZ'),
                   'attributes', _fx_kvjson(_fx_attrs(e.attributes)))) ELSE [] END AS ev,
               json_object(
                   'otel.span_kind', _fx_spankind(sp.kind),
                   'otel.status_code', CASE WHEN _fx_status(coalesce(sp.status.code, '0')) = 'unset'
                                            THEN 'UNSET' END,
                   'otel.scope', scope_json,
                   'otel.trace_state', nullif(sp.traceState, ''),
                   'otel.flags', sp.flags,
                   'otel.links', CASE WHEN json_array_length(sp.links) > 0 THEN sp.links END,
                   'otel.dropped', CASE WHEN coalesce(sp.droppedAttributesCount, 0)
                       + coalesce(sp.droppedEventsCount, 0) + coalesce(sp.droppedLinksCount, 0)
                       + coalesce(r_dropped, 0) > 0
                       THEN json_object('attributes', sp.droppedAttributesCount,
                                        'events', sp.droppedEventsCount,
                                        'links', sp.droppedLinksCount,
                                        'resource_attributes', r_dropped) END,
                   'otel.schema_url', schema_url) AS extra,
               NULL::VARCHAR AS _reject,
               {raw} AS _raw
        FROM (SELECT *, _fx_attrs(sp.attributes) AS a FROM {source})
    """


def _merge_logs(con: duckdb.DuckDBPyConnection, deep: bool,
                raw: str = "NULL::VARCHAR") -> None:
    """``_spans``: the spans with their GenAI log events, plus one row per span id whose
    log records have no span in the file (and one per log record without a span id)."""
    genai = ", ".join(f"'{n}'" for n in GENAI_LOG_EVENTS)
    has_logs = con.execute("SELECT EXISTS (SELECT 1 FROM _otlp_logs)").fetchall()[0][0]
    if not has_logs and not deep:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _spans AS {_span_rows(raw=raw)}")
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _spans_only AS "
                f"SELECT s.*, o.sp.attributes AS _kvs FROM ({_span_rows(raw=raw)}) s "
                f"JOIN _otlp_spans o USING (_ord)" if deep else
                f"CREATE OR REPLACE TEMP TABLE _spans_only AS {_span_rows(raw=raw)}")
    if deep:
        _deepen(con, "_spans_only")
        con.execute("ALTER TABLE _spans_only DROP COLUMN _kvs")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _log_groups AS
        SELECT trace_id, span_id, min(_ord) AS _ord, list(ev ORDER BY ts, _ord) AS evs,
               min_by(locator, _ord) || CASE WHEN count(*) > 1
                   THEN ' (+' || (count(*) - 1) || ' log records)' ELSE '' END AS locator,
               min(ts) AS ts, min_by(_ts_raw, _ord) AS _ts_raw,
               min_by(list_filter(a, lambda e: e.k <> 'event.name'), _ord) AS a,
               min_by(r, _ord) AS r, min_by(extra, _ord) AS extra,
               bool_or(event_name IN ({genai})) AS genai,
               min(_reject) AS _reject, min_by(_raw, _ord) AS _raw
        FROM _otlp_logs
        WHERE coalesce(event_name, '') <> '{EVALUATION}' AND span_id IS NOT NULL
        GROUP BY trace_id, span_id
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT s.* REPLACE (CASE WHEN g.evs IS NULL THEN s.ev ELSE list_concat(s.ev, g.evs) END
                            AS ev,
                            coalesce(s._reject, g._reject) AS _reject)
        FROM _spans_only s
        LEFT JOIN _log_groups g ON g.span_id = s.span_id
                               AND g.trace_id IS NOT DISTINCT FROM s.trace_id
        UNION ALL
        SELECT g._ord, g.locator, g.trace_id, g.span_id, NULL AS parent_id, NULL AS name,
               g._ts_raw, g.ts, NULL::TIMESTAMP AS end_ts,
               CASE WHEN g.genai THEN 'llm' END AS kind_hint, NULL AS status_code,
               NULL AS status_message, g.a, g.r, g.evs AS ev, g.extra, g._reject, g._raw
        FROM _log_groups g ANTI JOIN _spans_only s
            ON g.span_id = s.span_id AND g.trace_id IS NOT DISTINCT FROM s.trace_id
        UNION ALL
        SELECT _ord, locator, trace_id, NULL, NULL, event_name, _ts_raw, ts, NULL, NULL, NULL,
               NULL, list_filter(a, lambda e: e.k <> 'event.name'),
               r, [ev], extra, _reject, _raw
        FROM _otlp_logs
        WHERE coalesce(event_name, '') <> '{EVALUATION}' AND span_id IS NULL
    """)


def _evaluations(con: duckdb.DuckDBPyConnection) -> None:
    """``gen_ai.evaluation.result`` log events -> ``_stage_feedback``."""
    if not temp_exists(con, "_otlp_logs") or not con.execute(
            f"SELECT EXISTS (SELECT 1 FROM _otlp_logs WHERE event_name = '{EVALUATION}')"
    ).fetchall()[0][0]:
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_feedback AS
        WITH f AS (
            SELECT _ord, locator, span_id AS event_id, trace_id,
                   _fx_str(_fx_kv(a, 'user.id')) AS user_id, ts, _ts_raw,
                   _fx_str(_fx_kv(a, 'gen_ai.evaluation.name')) AS name,
                   coalesce(_fx_str(_fx_kv(a, 'gen_ai.evaluation.score.label')),
                            _fx_str(_fx_kv(a, 'gen_ai.evaluation.score.value'))) AS value,
                   try_cast(_fx_str(_fx_kv(a, 'gen_ai.evaluation.score.value')) AS DOUBLE) AS score,
                   coalesce(_fx_str(_fx_kv(a, 'gen_ai.evaluation.explanation')),
                            _fx_str(json_extract(ev, '$.body'))) AS comment,
                   'evaluation' AS source,
                   _fx_kvjson(list_filter(a, lambda e: e.k NOT IN (
                       'event.name', 'gen_ai.evaluation.name', 'gen_ai.evaluation.score.label',
                       'gen_ai.evaluation.score.value', 'gen_ai.evaluation.explanation',
                       'user.id'))) AS attributes,
                   _reject, left(_raw, {RAW}) AS _raw
            FROM _otlp_logs WHERE event_name = '{EVALUATION}')
        SELECT *, lower(coalesce(value, '')) IN ('fail', 'failed', 'bad', 'incorrect', 'wrong',
                                                 'toxic', 'harmful', 'irrelevant') AS negative
        FROM f
    """)


register(OtlpReader())

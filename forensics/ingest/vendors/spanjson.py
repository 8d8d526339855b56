"""Spans as JSON objects rather than OTLP: Phoenix span JSON and span dataframes saved
as Parquet (OpenInference), OpenTelemetry SDK span dumps (JS ``ReadableSpan``, Python
``ConsoleSpanExporter`` / ``span.to_json()``), and bare attribute maps of one span.

Two readers share this code and differ only in what they claim when detecting:
``openinference`` (Phoenix shapes, OpenInference attributes) and ``otel-sdk`` (SDK dumps,
GenAI / Vercel AI SDK attribute maps). A bare attribute map has no time of its own: its
event takes the file's modification time, and says so in ``attributes``
(``forensics.ts_source``).

>>> span = {"name": "ChatCompletion", "span_kind": "LLM",
...         "context": {"trace_id": "t-1", "span_id": "s-1"},
...         "start_time": "2026-03-02T10:00:00+00:00", "end_time": "2026-03-02T10:00:02+00:00",
...         "attributes": {"llm.model_name": "gpt-4o-mini", "output.value": "Paris",
...                        "llm.token_count.prompt": 9}}
>>> _ = Path("phoenix_spans.jsonl").write_text(json.dumps(span))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("phoenix_spans.jsonl").df["format"][0]
...     row = new.sql("SELECT kind, model, output_text, input_tokens FROM events").df.row(0)
>>> fmt, row
('openinference', ('llm', 'gpt-4o-mini', 'Paris', 9))
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb

from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    drop_records,
    ensure_rejects,
    install,
    literal,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import RAW_LIMIT, stage_spans

ENVELOPE = ["name", "context", "spanContext", "span_kind", "kind", "parent_id", "parentSpanId",
            "parent_span_id", "parentSpanContext", "start_time", "end_time", "startTime",
            "endTime", "status_code", "status_message", "status", "attributes", "events",
            "trace_id", "span_id", "traceId", "spanId", "resource", "context.span_id",
            "context.trace_id"]
SPAN_PREFIXES = ("gen_ai.", "llm.", "openinference.", "ai.", "retrieval.", "input.value",
                 "output.value", "tool.", "session.", "user.")
OI_PREFIXES = ("llm.", "openinference.", "retrieval.documents", "embedding.", "reranker.")


def _attr_keys(d: dict[str, Any]) -> list[str]:
    attrs = d.get("attributes")
    if isinstance(attrs, dict):
        return list(attrs)
    return [k[len("attributes."):] for k in d if k.startswith("attributes.")]


def _enveloped(d: dict[str, Any]) -> bool:
    ctx = d.get("context")
    return (isinstance(ctx, dict) and bool({"span_id", "trace_id"} & set(ctx))) \
        or isinstance(d.get("spanContext"), dict) or "context.span_id" in d


def _bare(d: dict[str, Any], prefixes: tuple[str, ...]) -> bool:
    keys = list(d)
    return bool(keys) and not _enveloped(d) and sum("." in k for k in keys) * 2 > len(keys) \
        and any(k.startswith(prefixes) for k in keys)


def _openinference(d: dict[str, Any]) -> bool:
    if _enveloped(d):
        return "span_kind" in d or any(k.startswith(OI_PREFIXES) for k in _attr_keys(d))
    return _bare(d, OI_PREFIXES)


def _sdk(d: dict[str, Any]) -> bool:
    return _enveloped(d) or _bare(d, SPAN_PREFIXES)


class SpanJsonReader:
    def __init__(self, name: str, description: str, test: Any) -> None:
        self.name, self.description, self._test = name, description, test

    def sniff(self, head: Head) -> bool:
        if head.is_parquet:
            return self.name == "openinference" and "context.span_id" in head.columns
        if head.whole and grouped(head.first):
            spans = [s for v in list(head.first.values())[:5] for s in v[:5]]
            return sum(1 for s in spans if self._test(s)) * 2 > len(spans)
        return sniff_any(head, self._test)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_span_json(con, path)


def grouped(doc: Any) -> bool:
    """A document that files its spans under keys (scenario or operation names):
    ``{"generateText": [span, ...], "streamText": [span, ...]}``."""
    return isinstance(doc, dict) and bool(doc) and all(
        isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in doc.values())


def _ungroup(con: duckdb.DuckDBPyConnection) -> None:
    """A grouped document -> one record per span (``document: <key>[i]``), its key kept
    as ``forensics.group``; any other record stays as it is."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sj_groups AS
        WITH docs AS (
            SELECT _ord, locator, j, json_keys(j) AS ks FROM _stage_records
            WHERE json_type(j) = 'OBJECT' AND len(json_keys(j)) > 0
              AND list_bool_and(list_transform(json_keys(j), lambda k:
                      coalesce(json_type(json_extract(j, k)) = 'ARRAY'
                               AND json_array_length(json_extract(j, k)) > 0, false)))),
        groups AS (
            SELECT _ord, locator, generate_subscripts(ks, 1) AS gi, unnest(ks) AS k, j
            FROM docs),
        spans AS (
            SELECT _ord, locator, gi, k,
                   generate_subscripts(json_extract(json_extract(j, k), '$[*]'), 1) AS si,
                   unnest(json_extract(json_extract(j, k), '$[*]')) AS s
            FROM groups)
        SELECT _ord * 1048576 + row_number() OVER (PARTITION BY _ord ORDER BY gi, si) AS _ord,
               locator || ': ' || k || '[' || (si - 1) || ']' AS locator,
               CASE WHEN json_type(s) = 'OBJECT'
                    THEN json_merge_patch(s, json_object('forensics.group', k)) END AS j,
               s::VARCHAR AS raw, _ord AS _doc
        FROM spans
    """)
    if not con.execute("SELECT EXISTS (SELECT 1 FROM _sj_groups)").fetchall()[0][0]:
        con.execute("DROP TABLE _sj_groups")
        return
    con.execute(f"""INSERT INTO _stage_rejects SELECT locator, 'grouped entry is not a
        JSON object', left(raw, {RAW_LIMIT}) FROM _sj_groups WHERE j IS NULL""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sj_records AS
        SELECT _ord, locator, j FROM _stage_records
        WHERE _ord NOT IN (SELECT _doc FROM _sj_groups)
        UNION ALL
        SELECT _ord, locator, j FROM _sj_groups WHERE j IS NOT NULL
    """)
    drop_records(con)
    con.execute("ALTER TABLE _sj_records RENAME TO _stage_records")
    con.execute("DROP TABLE _sj_groups")


def _get(*paths: str) -> str:
    """First non-null text among JSON paths of the record ``j``."""
    parts = [f"json_extract_string(j, {literal(p)})" for p in paths]
    return "coalesce(" + ", ".join(parts) + ")"


def stage_span_json(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``path`` -> ``_spans`` -> the ``_stage_*`` tables."""
    install(con)
    records(con, path)
    ensure_rejects(con)
    _ungroup(con)
    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    mtime = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    mtime_sql = f"TIMESTAMP '{stamp.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    envelope = ", ".join(literal(k) for k in ENVELOPE)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _sj AS
        SELECT _ord, locator, j, top,
               coalesce(json_type(j, '$.attributes') = 'OBJECT' OR json_exists(j, '$.context')
                   OR json_exists(j, '$.spanContext') OR json_exists(j, '$."context.span_id"'),
                   false) AS enveloped
        FROM (SELECT *, _fx_kvobj(j) AS top FROM _stage_records)
    """)
    attrs = ("CASE WHEN json_type(j, '$.attributes') = 'OBJECT' "
             "THEN _fx_kvobj(json_extract(j, '$.attributes')) "
             "WHEN enveloped THEN list_transform(list_filter(top, "
             "lambda e: starts_with(e.k, 'attributes.')), "
             "lambda e: {'k': e.k[12:], 'v': e.v}) "
             "ELSE top END")
    status = _get('$.status_code', '$.status.status_code', '$.status.code')
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _sj_raw AS
        SELECT _ord, locator, j, top, enveloped,
               {_get('$.context.trace_id', '$.spanContext.traceId', '$."context.trace_id"',
                     '$.trace_id', '$.traceId')} AS _trace,
               CASE WHEN enveloped THEN {_get('$.context.span_id', '$.spanContext.spanId',
                   '$."context.span_id"', '$.span_id', '$.spanId')} END AS _span,
               {_get('$.parent_id', '$.parentSpanId', '$.parent_span_id',
                     '$.parentSpanContext.spanId')} AS _parent,
               CASE WHEN enveloped THEN coalesce({_get('$.start_time')},
                   json_extract(j, '$.startTime')::VARCHAR) ELSE '{mtime}' END AS _ts_raw,
               json_extract(j, '$.startTime') AS _start_js,
               coalesce({_get('$.end_time')}, json_extract(j, '$.endTime')::VARCHAR) AS _end_raw,
               json_extract(j, '$.endTime') AS _end_js,
               {status} AS _status,
               json_extract_string(j, '$.kind') AS _otel_kind,
               {attrs} AS a
        FROM _sj
    """)
    hr = ("CASE WHEN json_type({x}) = 'ARRAY' THEN make_timestamp(("
          "try_cast({x} ->> 0 AS BIGINT) * 1000000 + try_cast({x} ->> 1 AS BIGINT) // 1000)) "
          "ELSE _fx_ts({raw}) END")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT _ord, locator, _fx_id(_trace) AS trace_id, _fx_id(_span) AS span_id,
               _fx_id(_parent) AS parent_id,
               CASE WHEN enveloped THEN json_extract_string(j, '$.name') END AS name,
               _ts_raw,
               CASE WHEN enveloped THEN {hr.format(x='_start_js', raw='_ts_raw')}
                    ELSE {mtime_sql} END AS ts,
               {hr.format(x='_end_js', raw='_end_raw')} AS end_ts,
               CASE WHEN enveloped THEN json_extract_string(j, '$.span_kind') END AS kind_hint,
               _fx_status(_status) AS status_code,
               {_get('$.status_message', '$.status.description', '$.status.message')}
                   AS status_message,
               a,
               _fx_kvobj(json_extract(j, '$.resource.attributes')) AS r,
               list_transform(coalesce(json_extract(j, '$.events[*]'), []), lambda e: json_object(
                   'name', e ->> 'name',
                   'time', coalesce(e ->> 'timestamp', json_extract(e, 'time')::VARCHAR),
                   'attributes', json_extract(e, 'attributes'))) AS ev,
               CASE WHEN enveloped THEN _fx_kvjson(list_concat(
                   list_filter(top, lambda e: NOT list_contains([{envelope}], e.k)
                                             AND NOT starts_with(e.k, 'attributes.')),
                   _fx_kvs([{{'k': 'otel.span_kind', 'v': to_json(_fx_spankind(_otel_kind))}},
                            {{'k': 'otel.status_code', 'v': CASE WHEN _fx_status(_status) =
                                'unset' THEN '"UNSET"'::JSON END}}])))
                    ELSE json_object('forensics.ts_source', 'file modified time') END AS extra,
               NULL::VARCHAR AS _reject,
               j::VARCHAR AS _raw
        FROM _sj_raw
    """)
    stage_spans(con)
    con.execute("DROP VIEW _spans")
    con.execute("DROP VIEW _sj_raw")
    con.execute("DROP TABLE _sj")
    drop_records(con)


register(SpanJsonReader(
    "openinference", "OpenInference spans: Phoenix span JSON / JSONL, Phoenix span "
    "dataframes saved as Parquet, OpenInference attribute maps", _openinference))
register(SpanJsonReader(
    "otel-sdk", "OpenTelemetry SDK span dumps (JS ReadableSpan, Python span.to_json) and "
    "GenAI / Vercel AI SDK span attribute maps", _sdk))

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

>>> case.load("otel-traces.jsonl")   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from . import Head, register
from .common import RAW, drop_records, ensure_rejects, install, records, sniff_any
from .semconv import stage_spans

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
DOC = {
    "resourceSpans": [{"resource": RESOURCE, "schemaUrl": "VARCHAR",
                       "scopeSpans": [{"scope": SCOPE, "schemaUrl": "VARCHAR", "spans": [SPAN]}],
                       "instrumentationLibrarySpans": [{"instrumentationLibrary": SCOPE,
                                                        "schemaUrl": "VARCHAR",
                                                        "spans": [SPAN]}]}],
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
        return not head.is_parquet and sniff_any(head, _doc_keys)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_otlp(con, path)


def stage_otlp(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``path`` -> ``_spans`` (+ ``_stage_feedback``) -> the ``_stage_*`` tables."""
    install(con)
    records(con, path)
    ensure_rejects(con)
    doc = json.dumps(DOC)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _otlp AS
        SELECT _ord AS line, locator, from_json(j, '{doc}') AS d FROM _stage_records
    """)
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT o.locator, 'not OTLP/JSON: no resourceSpans, batches or resourceLogs list',
               left(r.j::VARCHAR, {RAW})
        FROM _otlp o JOIN _stage_records r ON r._ord = o.line
        WHERE coalesce(o.d.resourceSpans, o.d.batches) IS NULL AND o.d.resourceLogs IS NULL
        ORDER BY o.line
    """)
    _spans_view(con)
    _logs_table(con)
    _merge_logs(con)
    stage_spans(con)
    _evaluations(con)
    con.execute("DROP TABLE _otlp")
    drop_records(con)


def _spans_view(con: duckdb.DuckDBPyConnection) -> None:
    """One row per span, with its resource, scope and a locator down to the span."""
    con.execute("""
        CREATE OR REPLACE TEMP VIEW _otlp_spans AS
        WITH rs AS (
            SELECT line, locator, CASE WHEN d.resourceSpans IS NOT NULL THEN 'resourceSpans'
                                       ELSE 'batches' END AS rs_key,
                   unnest(coalesce(d.resourceSpans, d.batches)) AS rs,
                   generate_subscripts(coalesce(d.resourceSpans, d.batches), 1) - 1 AS ri
            FROM _otlp),
        ss AS (
            SELECT line, locator, rs_key, ri, rs.resource AS res, rs.schemaUrl AS rs_schema,
                   CASE WHEN rs.scopeSpans IS NOT NULL THEN 'scopeSpans'
                        ELSE 'instrumentationLibrarySpans' END AS ss_key,
                   unnest(coalesce(rs.scopeSpans, list_transform(rs.instrumentationLibrarySpans,
                       lambda x: {'scope': x.instrumentationLibrary, 'schemaUrl': x.schemaUrl,
                                  'spans': x.spans}))) AS ss,
                   generate_subscripts(coalesce(rs.scopeSpans, rs.instrumentationLibrarySpans), 1)
                       - 1 AS si
            FROM rs),
        base AS (
            SELECT *, coalesce(sum(len(ss.spans)) OVER (PARTITION BY line ORDER BY ri, si
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
            FROM ss)
        SELECT line * 4294967296 + before + pi AS _ord,
               locator || ': ' || rs_key || '[' || ri || '].' || ss_key || '[' || si
                   || '].spans[' || pi || ']' AS locator,
               res, rs_schema, ss.scope AS scope, ss.schemaUrl AS ss_schema, sp
        FROM (SELECT *, unnest(ss.spans) AS sp, generate_subscripts(ss.spans, 1) - 1 AS pi
              FROM base)
    """)


def _logs_table(con: duckdb.DuckDBPyConnection) -> None:
    """One row per log record, its body and attributes as plain JSON."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _otlp_logs AS
        WITH rl AS (
            SELECT line, locator, unnest(d.resourceLogs) AS rl,
                   generate_subscripts(d.resourceLogs, 1) - 1 AS ri
            FROM _otlp WHERE d.resourceLogs IS NOT NULL),
        sl AS (
            SELECT line, locator, ri, rl.resource AS res,
                   CASE WHEN rl.scopeLogs IS NOT NULL THEN 'scopeLogs'
                        ELSE 'instrumentationLibraryLogs' END AS sl_key,
                   unnest(coalesce(rl.scopeLogs, list_transform(rl.instrumentationLibraryLogs,
                       lambda x: {'scope': x.instrumentationLibrary, 'schemaUrl': x.schemaUrl,
                                  'logRecords': x.logRecords}))) AS sl,
                   generate_subscripts(coalesce(rl.scopeLogs, rl.instrumentationLibraryLogs), 1)
                       - 1 AS si
            FROM rl),
        base AS (
            SELECT *, coalesce(sum(len(sl.logRecords)) OVER (PARTITION BY line ORDER BY ri, si
                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
            FROM sl),
        recs AS (
            SELECT line * 4294967296 + 2147483648 + before + li AS _ord,
                   locator || ': resourceLogs[' || ri || '].' || sl_key || '[' || si
                       || '].logRecords[' || li || ']' AS locator,
                   res, sl.scope AS scope, lr, _fx_attrs(lr.attributes) AS a
            FROM (SELECT *, unnest(sl.logRecords) AS lr,
                         generate_subscripts(sl.logRecords, 1) - 1 AS li FROM base))
        SELECT _ord, locator, _fx_id(lr.traceId) AS trace_id, _fx_id(lr.spanId) AS span_id,
               coalesce(_fx_nanos(lr.timeUnixNano), _fx_nanos(lr.observedTimeUnixNano)) AS ts,
               coalesce(nullif(lr.timeUnixNano, '0'), lr.observedTimeUnixNano) AS _ts_raw,
               coalesce(lr.eventName, _fx_str(a['event.name'])) AS event_name,
               a, _fx_attrs(res.attributes) AS r,
               json_object('name', coalesce(lr.eventName, _fx_str(a['event.name'])),
                           'time', strftime(coalesce(_fx_nanos(lr.timeUnixNano),
                                                     _fx_nanos(lr.observedTimeUnixNano)),
                                            '%Y-%m-%dT%H:%M:%S.%fZ'),
                           'attributes', _fx_mapjson(map_from_entries(list_filter(
                               map_entries(a), lambda e: e.key <> 'event.name'))),
                           'body', _fx_any(lr.body),
                           'severity', coalesce(lr.severityText, lr.severityNumber)) AS ev,
               json_object('scope', CASE WHEN scope.name IS NOT NULL THEN json_object(
                               'name', scope.name, 'version', scope.version) END,
                           'otel.log.severity', coalesce(lr.severityText, lr.severityNumber),
                           'otel.log.flags', lr.flags) AS extra,
               CASE WHEN a IS NULL THEN 'attribute keys repeat or are missing' END AS _reject,
               to_json(lr)::VARCHAR AS _raw
        FROM recs
    """)


def _span_rows() -> str:
    """The ``_spans`` columns of an OTLP span (see forensics.formats.semconv)."""
    return """
        SELECT _ord, locator, _fx_id(sp.traceId) AS trace_id, _fx_id(sp.spanId) AS span_id,
               _fx_id(sp.parentSpanId) AS parent_id, sp.name AS name,
               sp.startTimeUnixNano AS _ts_raw, _fx_nanos(sp.startTimeUnixNano) AS ts,
               _fx_nanos(sp.endTimeUnixNano) AS end_ts, NULL::VARCHAR AS kind_hint,
               _fx_status(sp.status.code) AS status_code, sp.status.message AS status_message,
               _fx_attrs(sp.attributes) AS a, _fx_attrs(res.attributes) AS r,
               coalesce(list_transform(sp.events, lambda e: json_object(
                   'name', e.name,
                   'time', strftime(_fx_nanos(e.timeUnixNano), '%Y-%m-%dT%H:%M:%S.%fZ'),
                   'attributes', _fx_mapjson(_fx_attrs(e.attributes)))), []) AS ev,
               json_object(
                   'otel.span_kind', _fx_spankind(sp.kind),
                   'otel.status_code', CASE WHEN _fx_status(sp.status.code) = 'unset'
                                            THEN 'UNSET' END,
                   'otel.scope', CASE WHEN scope.name IS NOT NULL OR scope.version IS NOT NULL
                       THEN json_object('name', scope.name, 'version', scope.version,
                                        'attributes', CASE WHEN len(scope.attributes) > 0 THEN
                                            _fx_mapjson(_fx_attrs(scope.attributes)) END) END,
                   'otel.trace_state', nullif(sp.traceState, ''),
                   'otel.flags', sp.flags,
                   'otel.links', CASE WHEN json_array_length(sp.links) > 0 THEN sp.links END,
                   'otel.dropped', CASE WHEN coalesce(sp.droppedAttributesCount, 0)
                       + coalesce(sp.droppedEventsCount, 0) + coalesce(sp.droppedLinksCount, 0)
                       > 0 THEN json_object('attributes', sp.droppedAttributesCount,
                                            'events', sp.droppedEventsCount,
                                            'links', sp.droppedLinksCount) END,
                   'otel.schema_url', coalesce(ss_schema, rs_schema)) AS extra,
               CASE WHEN _fx_attrs(sp.attributes) IS NULL
                    THEN 'attribute keys repeat or are missing' END AS _reject,
               to_json(sp)::VARCHAR AS _raw
        FROM _otlp_spans
    """


def _merge_logs(con: duckdb.DuckDBPyConnection) -> None:
    """``_spans``: the spans with their GenAI log events, plus one row per span id whose
    log records have no span in the file (and one per log record without a span id)."""
    genai = ", ".join(f"'{n}'" for n in GENAI_LOG_EVENTS)
    if not con.execute("SELECT EXISTS (SELECT 1 FROM _otlp_logs)").fetchall()[0][0]:
        con.execute(f"CREATE OR REPLACE TEMP VIEW _spans AS {_span_rows()}")
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE _spans_only AS {_span_rows()}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _log_groups AS
        SELECT trace_id, span_id, min(_ord) AS _ord, list(ev ORDER BY ts, _ord) AS evs,
               min_by(locator, _ord) || CASE WHEN count(*) > 1
                   THEN ' (+' || (count(*) - 1) || ' log records)' ELSE '' END AS locator,
               min(ts) AS ts, min_by(_ts_raw, _ord) AS _ts_raw,
               min_by(map_from_entries(list_filter(map_entries(a),
                      lambda e: e.key <> 'event.name')), _ord) AS a,
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
               NULL, map_from_entries(list_filter(map_entries(a), lambda e: e.key <> 'event.name')),
               r, [ev], extra, _reject, _raw
        FROM _otlp_logs
        WHERE coalesce(event_name, '') <> '{EVALUATION}' AND span_id IS NULL
    """)


def _evaluations(con: duckdb.DuckDBPyConnection) -> None:
    """``gen_ai.evaluation.result`` log events -> ``_stage_feedback``."""
    if not _exists(con, "_otlp_logs"):
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_feedback AS
        WITH f AS (
            SELECT _ord, locator, span_id AS event_id, trace_id,
                   _fx_str(a['user.id']) AS user_id, ts, _ts_raw,
                   _fx_str(a['gen_ai.evaluation.name']) AS name,
                   coalesce(_fx_str(a['gen_ai.evaluation.score.label']),
                            _fx_str(a['gen_ai.evaluation.score.value'])) AS value,
                   try_cast(_fx_str(a['gen_ai.evaluation.score.value']) AS DOUBLE) AS score,
                   coalesce(_fx_str(a['gen_ai.evaluation.explanation']),
                            _fx_str(json_extract(ev, 'body'))) AS comment,
                   'evaluation' AS source,
                   _fx_mapjson(map_from_entries(list_filter(map_entries(a), lambda e: e.key NOT IN (
                       'event.name', 'gen_ai.evaluation.name', 'gen_ai.evaluation.score.label',
                       'gen_ai.evaluation.score.value', 'gen_ai.evaluation.explanation',
                       'user.id')))) AS attributes,
                   _reject, left(_raw, {RAW}) AS _raw
            FROM _otlp_logs WHERE event_name = '{EVALUATION}')
        SELECT *, lower(coalesce(value, '')) IN ('fail', 'failed', 'bad', 'incorrect', 'wrong',
                                                 'toxic', 'harmful', 'irrelevant') AS negative
        FROM f
    """)


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    from ..db import temp_exists

    return temp_exists(con, table)


register(OtlpReader())

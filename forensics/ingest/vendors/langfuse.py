"""Langfuse: "trace with full details" exports (``{trace: {..., scores}, observations}``),
API list responses (``{data: [...]}``) and blob-storage exports (JSON / JSONL of traces,
observations or scores, camelCase or snake_case).

Each observation is an event (GENERATION -> llm, TOOL -> tool, ...); its trace gives it
user, session, release and feature (the trace name), and the trace's own metadata keys
join its ``attributes``. Observations ingested through OpenTelemetry keep their span
attributes in ``metadata.attributes``: those are read with the same conventions as OTLP.
A trace with no observations in the file is an event of kind ``trace``. Scores become
``feedback`` (by observation id, else trace id).

>>> trace = {"trace": {"id": "t1", "name": "support_chat", "timestamp": "2026-03-02T12:00:00Z"},
...          "observations": [{"id": "g1", "traceId": "t1", "type": "GENERATION",
...              "startTime": "2026-03-02T12:00:00.1Z", "endTime": "2026-03-02T12:00:01.1Z",
...              "model": "gpt-4o", "output": {"role": "assistant", "content": "Done."},
...              "usageDetails": {"input": 50, "output": 9}}]}
>>> _ = Path("langfuse-trace.json").write_text(json.dumps(trace))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("langfuse-trace.json").df["format"][0]
...     row = new.sql("SELECT kind, model, output_text, output_tokens FROM events").df.row(0)
>>> fmt, row
('langfuse', ('llm', 'gpt-4o', 'Done.', 9))
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb

from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    RAW,
    drop_records,
    ensure_rejects,
    install,
    literal,
    negative_sql,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import stage_spans

OBS_TYPES = ("GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
             "EMBEDDING", "GUARDRAIL")
# Langfuse field (camelCase, snake_case) -> the Langfuse OTel attribute that carries it
OBS_ATTRS = {
    "langfuse.observation.type": ("type",),
    "langfuse.observation.level": ("level",),
    "langfuse.observation.status_message": ("statusMessage", "status_message"),
    "langfuse.observation.model.name": ("model", "providedModelName", "provided_model_name"),
    "langfuse.observation.input": ("input",),
    "langfuse.observation.output": ("output",),
    "langfuse.observation.usage_details": ("usageDetails", "usage_details", "usage"),
    "langfuse.observation.cost_details": ("costDetails", "cost_details"),
    "langfuse.observation.prompt.name": ("promptName", "prompt_name"),
    "langfuse.observation.prompt.version": ("promptVersion", "prompt_version"),
    "gen_ai.usage.cost": ("totalCost", "calculatedTotalCost", "total_cost", "usage.totalCost"),
}
ENVELOPE = ("id", "traceId", "trace_id", "parentObservationId", "parent_observation_id", "name",
            "startTime", "start_time", "endTime", "end_time", "metadata")
TRACE_CTX = {"langfuse.user.id": ("userId", "user_id"),
             "langfuse.session.id": ("sessionId", "session_id"),
             "langfuse.release": ("release",), "langfuse.trace.name": ("name",)}


# Ingestion API event types (``POST /api/public/ingestion`` batches, as the SDKs and
# LiteLLM's Langfuse callback send them) -> the observation type their body is
INGESTION_TYPES = {"generation-create": "GENERATION", "generation-update": "GENERATION",
                   "span-create": "SPAN", "span-update": "SPAN", "event-create": "EVENT",
                   "agent-create": "AGENT", "tool-create": "TOOL", "chain-create": "CHAIN",
                   "retriever-create": "RETRIEVER", "evaluator-create": "EVALUATOR",
                   "embedding-create": "EMBEDDING", "guardrail-create": "GUARDRAIL"}
OTHER_INGESTION = ("trace-create", "score-create", "observation-create", "observation-update",
                   "sdk-log")


def _is_langfuse(d: dict[str, Any]) -> bool:
    if isinstance(d.get("trace"), dict) and isinstance(d.get("observations"), list):
        return True
    if isinstance(d.get("batch"), list):
        return any(isinstance(e, dict) and (e.get("type") in INGESTION_TYPES
                                            or e.get("type") in OTHER_INGESTION)
                   and isinstance(e.get("body"), dict) for e in d["batch"][:10])
    trace_ref = "traceId" in d or "trace_id" in d
    if d.get("type") in OBS_TYPES and trace_ref and ("startTime" in d or "start_time" in d):
        return True
    if trace_ref and ("dataType" in d or "data_type" in d) and "name" in d:
        return True
    return "id" in d and "timestamp" in d and ("projectId" in d or "project_id" in d) \
        and ("sessionId" in d or "session_id" in d or "userId" in d or "user_id" in d)


class LangfuseReader:
    name = "langfuse"
    description = ("Langfuse trace exports (trace, observations, scores), API responses and "
                   "blob-storage JSON / JSONL exports")

    def sniff(self, head: Head) -> bool:
        return not head.is_parquet and (sniff_any(head, _is_langfuse) or bool(re.match(
            r'\s*\[?\s*\{\s*"trace"\s*:\s*\{', head.text)))

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_langfuse(con, path)


def _f(o: str, *names: str) -> str:
    """The first present field among ``names`` of the JSON object ``o`` (as JSON)."""
    parts = [f"json_extract({o}, {literal('$.' + n)})" for n in names]
    return parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"


def _s(o: str, *names: str) -> str:
    return f"_fx_str({_f(o, *names)})"


def _kind_sql(o: str) -> str:
    types = ", ".join(literal(t) for t in OBS_TYPES)
    trace_ref = f"(json_exists({o}, '$.traceId') OR json_exists({o}, '$.trace_id'))"
    return (f"CASE WHEN json_type({o}) <> 'OBJECT' THEN NULL "
            f"WHEN (json_exists({o}, '$.dataType') OR json_exists({o}, '$.data_type') "
            f"OR (json_exists({o}, '$.value') AND json_exists({o}, '$.name') AND {trace_ref} "
            f"AND NOT json_exists({o}, '$.type'))) THEN 'score' "
            f"WHEN ({o} ->> 'type') IN ({types}) AND {trace_ref} THEN 'observation' "
            f"WHEN json_exists({o}, '$.id') AND json_exists({o}, '$.timestamp') THEN 'trace' END")


def stage_langfuse(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    install(con)
    records(con, path)
    ensure_rejects(con)
    _items(con)
    _traces(con)
    _observation_spans(con)
    stage_spans(con)
    _scores(con)
    for name in ("_spans", "_lf_obs_spans"):
        con.execute(f"DROP VIEW IF EXISTS {name}")
    for name in ("_lf_items", "_lf_traces"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    drop_records(con)


def _items(con: duckdb.DuckDBPyConnection) -> None:
    """``_lf_items(_ord, locator, kind, o)``: every trace, observation and score object,
    wherever the file nests it."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lf_items AS
        WITH rec AS (
            SELECT _ord, locator, j,
                   CASE WHEN json_type(j, '$.trace') = 'OBJECT' THEN json_extract(j, '$.trace')
                        WHEN json_type(j, '$.observations[0]') = 'OBJECT'
                             OR json_type(j, '$.scores') = 'ARRAY' THEN j END AS tr,
                   coalesce(json_type(j, '$.data') = 'ARRAY', false) AS listed,
                   coalesce(json_type(j, '$.batch') = 'ARRAY', false) AS batched
            FROM _stage_records),
        {_batch_ctes()}
        nested AS (
            SELECT _ord, locator, 'trace' AS path, 0 AS i,
                   json_merge_patch(tr, '{{"observations": null, "scores": null}}') AS o
            FROM rec WHERE tr IS NOT NULL
            UNION ALL
            SELECT _ord, locator, p, i, o FROM (
                SELECT _ord, locator,
                       CASE WHEN json_type(j, '$.observations') = 'ARRAY' AND tr <> j
                            THEN 'observations' ELSE 'trace.observations' END AS p,
                       unnest(CASE WHEN json_type(j, '$.observations') = 'ARRAY' AND tr <> j
                                   THEN json_extract(j, '$.observations[*]')
                                   WHEN json_type(tr, '$.observations[0]') = 'OBJECT'
                                   THEN json_extract(tr, '$.observations[*]') END) AS o,
                       generate_subscripts(CASE WHEN json_type(j, '$.observations') = 'ARRAY'
                                                     AND tr <> j
                                                THEN json_extract(j, '$.observations[*]')
                                                WHEN json_type(tr, '$.observations[0]') = 'OBJECT'
                                                THEN json_extract(tr, '$.observations[*]') END, 1)
                           - 1 AS i
                FROM rec WHERE tr IS NOT NULL)
            UNION ALL
            SELECT _ord, locator, CASE WHEN tr = j THEN 'scores' ELSE 'trace.scores' END,
                   generate_subscripts(json_extract(tr, '$.scores[*]'), 1) - 1 + 100000,
                   unnest(json_extract(tr, '$.scores[*]'))
            FROM rec WHERE tr IS NOT NULL
            UNION ALL
            SELECT _ord, locator, 'data', generate_subscripts(json_extract(j, '$.data[*]'), 1) - 1,
                   unnest(json_extract(j, '$.data[*]'))
            FROM rec WHERE tr IS NULL AND listed
            UNION ALL
            SELECT _ord, locator, 'batch', i, o FROM batch_merged
            UNION ALL
            SELECT _ord, locator, NULL, 0, j FROM rec WHERE tr IS NULL AND NOT listed
                AND NOT batched)
        SELECT _ord * 1048576 + CASE WHEN path = 'trace' THEN 0 ELSE i + 1 END AS _ord,
               locator || CASE WHEN path IS NULL THEN ''
                               WHEN path = 'trace' THEN ': trace'
                               ELSE ': ' || path || '[' || (i % 100000) || ']' END AS locator,
               {_kind_sql('o')} AS kind, o
        FROM nested
    """)
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT locator, 'not a Langfuse trace, observation or score', left(o::VARCHAR, {RAW})
        FROM _lf_items WHERE kind IS NULL ORDER BY _ord
    """)


def _batch_ctes() -> str:
    """CTEs over an ingestion batch (``{batch: [{id, type, body, timestamp}], metadata}``):
    each ``-create`` body with the observation type its event type names, its start (the
    event's time when the body has none) and the trace id (a body without one belongs to
    the batch's trace when it holds exactly one); the ``-update`` events of an id merged
    into its ``-create``, in batch order."""
    types = "MAP {" + ", ".join(f"{literal(k)}: {literal(v)}"
                                for k, v in INGESTION_TYPES.items()) + "}"
    return f"""
        batch_items AS (
            SELECT _ord, locator, generate_subscripts(json_extract(j, '$.batch[*]'), 1) - 1
                       AS i,
                   unnest(json_extract(j, '$.batch[*]')) AS e
            FROM rec WHERE batched),
        batch_traces AS (
            SELECT _ord, list(DISTINCT e ->> '$.body.id') AS ids
            FROM batch_items WHERE (e ->> 'type') = 'trace-create' GROUP BY _ord),
        batch_bodies AS (
            SELECT b._ord, b.locator, b.i, e ->> 'type' AS etype,
                   coalesce(e ->> '$.body.id', 'event ' || b.i) AS oid,
                   json_merge_patch(json_extract(e, '$.body'), CASE
                       WHEN (e ->> 'type') IN ('trace-create', 'score-create')
                       THEN json_object(
                           'timestamp', coalesce(e ->> '$.body.timestamp', e ->> 'timestamp'))
                       WHEN ends_with(e ->> 'type', '-update')
                       THEN CASE WHEN coalesce(e ->> '$.body.type', {types}[e ->> 'type'])
                                      IS NULL THEN '{{}}'::JSON
                                 ELSE json_object('type', coalesce(e ->> '$.body.type',
                                                                   {types}[e ->> 'type'])) END
                       ELSE json_object(
                           'type', coalesce(e ->> '$.body.type', {types}[e ->> 'type']),
                           'traceId', coalesce(e ->> '$.body.traceId',
                                               CASE WHEN len(t.ids) = 1 THEN t.ids[1] END,
                                               e ->> '$.body.id'),
                           'startTime', coalesce(e ->> '$.body.startTime', e ->> 'timestamp'))
                       END) AS o
            FROM batch_items b LEFT JOIN batch_traces t USING (_ord)
            WHERE json_type(e, '$.body') = 'OBJECT'),
        batch_merged AS (
            SELECT _ord, any_value(locator) AS locator, min(i) AS i,
                   list_reduce(list(o ORDER BY i), lambda a, x: json_merge_patch(a, x)) AS o
            FROM batch_bodies
            GROUP BY _ord, oid, CASE WHEN etype = 'trace-create' THEN 't'
                                     WHEN etype = 'score-create' THEN 's' ELSE 'o' END),"""


def _traces(con: duckdb.DuckDBPyConnection) -> None:
    """One row per trace id: its context for its observations."""
    ctx = ", ".join(f"{_s('o', *names)} AS {literal(key).replace(chr(39), chr(34))}"
                    for key, names in TRACE_CTX.items())
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _lf_traces AS
        SELECT o ->> 'id' AS id, _ord, locator, o, {ctx},
               _fx_unq(json_extract(o, '$.metadata')) AS meta
        FROM _lf_items WHERE kind = 'trace'
        QUALIFY row_number() OVER (PARTITION BY o ->> 'id' ORDER BY _ord) = 1
    """)


def _attr_list(o: str, spec: dict[str, tuple[str, ...]]) -> str:
    entries = ", ".join(f"{{'k': {literal(k)}, 'v': {_f(o, *names)}}}"
                        for k, names in spec.items())
    return f"_fx_kvs([{entries}])"


def _user_meta(meta: str) -> str:
    """Metadata keys set by the user (not the OTel attributes Langfuse keeps there)."""
    return (f"CASE WHEN json_type({meta}) = 'OBJECT' THEN json_merge_patch({meta}, "
            "'{\"attributes\": null, \"resourceAttributes\": null, \"scope\": null}') END")


def _observation_spans(con: duckdb.DuckDBPyConnection) -> None:
    """``_spans`` from observations (with their trace's context) and from traces that
    have no observation in the file."""
    consumed = {n for names in OBS_ATTRS.values() for n in names} | set(ENVELOPE)
    drop = "{" + ", ".join(f'"{n}": null' for n in sorted(consumed)) + "}"
    ctx = ("_fx_kvs([" + ", ".join(
        f"{{'k': {literal(k)}, 'v': to_json(t.\"{k}\")}}" for k in TRACE_CTX) + "])")
    model_req = ("_fx_kvs([{'k': 'gen_ai.request.model', 'v': json_extract(_fx_unq("
                 + _f("i.o", "modelParameters", "model_parameters") + "), '$.model')}])")
    meta = "_fx_unq(json_extract(i.o, '$.metadata'))"
    user_meta = (f"json_merge_patch(coalesce({_user_meta('t.meta')}, '{{}}'), "
                 f"coalesce({_user_meta(meta)}, '{{}}'))")
    trace_rest = ("json_merge_patch(t.o, '{\"id\": null, \"name\": null, \"userId\": null, "
                  "\"user_id\": null, \"sessionId\": null, \"session_id\": null, "
                  "\"release\": null, \"metadata\": null, \"observations\": null, "
                  "\"scores\": null}')")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _lf_obs_spans AS
        SELECT i._ord, i.locator,
               _fx_id({_s('i.o', 'traceId', 'trace_id')}) AS trace_id,
               _fx_id(i.o ->> 'id') AS span_id,
               _fx_id({_s('i.o', 'parentObservationId', 'parent_observation_id')}) AS parent_id,
               i.o ->> 'name' AS name,
               {_s('i.o', 'startTime', 'start_time')} AS _ts_raw,
               _fx_ts({_s('i.o', 'startTime', 'start_time')}) AS ts,
               _fx_ts({_s('i.o', 'endTime', 'end_time')}) AS end_ts,
               NULL::VARCHAR AS kind_hint, NULL::VARCHAR AS status_code,
               NULL::VARCHAR AS status_message,
               list_concat({_attr_list('i.o', OBS_ATTRS)}, {model_req},
                           _fx_kvobj(json_extract({meta}, '$.attributes')),
                           _fx_kvs([{{'k': 'metadata', 'v': nullif({user_meta}::VARCHAR,
                                                                   '{{}}')::JSON}}]),
                           {ctx}) AS a,
               _fx_kvobj(json_extract({meta}, '$.resourceAttributes')) AS r,
               []::JSON[] AS ev,
               json_merge_patch(json_merge_patch(i.o, '{drop}'),
                   json_object('otel.scope', json_extract({meta}, '$.scope'),
                               'langfuse.trace', CASE WHEN {_s('i.o', 'parentObservationId',
                                   'parent_observation_id')} IS NULL
                                   THEN nullif({trace_rest}::VARCHAR, '{{}}')::JSON END))
                   AS extra,
               NULL::VARCHAR AS _reject, i.o::VARCHAR AS _raw
        FROM _lf_items i
        LEFT JOIN _lf_traces t ON t.id = {_s('i.o', 'traceId', 'trace_id')}
        WHERE i.kind = 'observation'
    """)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT * FROM _lf_obs_spans
        UNION ALL
        SELECT t._ord, t.locator, _fx_id(t.id), _fx_id(t.id), NULL, t.o ->> 'name',
               t.o ->> 'timestamp', _fx_ts(t.o ->> 'timestamp'), NULL::TIMESTAMP, 'trace', NULL,
               NULL,
               list_concat(_fx_kvs([
                   {{'k': 'langfuse.observation.input', 'v': json_extract(t.o, '$.input')}},
                   {{'k': 'langfuse.observation.output', 'v': json_extract(t.o, '$.output')}}]),
                   _fx_kvobj(json_extract(t.meta, '$.attributes')),
                   _fx_kvs([{{'k': 'metadata', 'v': {_user_meta('t.meta')}}}]),
                   {ctx.replace('t."', 't."')}),
               _fx_kvobj(json_extract(t.meta, '$.resourceAttributes')), []::JSON[],
               json_merge_patch({trace_rest}, '{{"input": null, "output": null, '
                                              '"timestamp": null}}'),
               NULL, t.o::VARCHAR
        FROM _lf_traces t
        WHERE NOT EXISTS (SELECT 1 FROM _lf_items i WHERE i.kind = 'observation'
                          AND {_s('i.o', 'traceId', 'trace_id')} = t.id)
    """)


def _scores(con: duckdb.DuckDBPyConnection) -> None:
    """Scores -> ``_stage_feedback``."""
    drop = ('{"id": null, "traceId": null, "trace_id": null, "observationId": null, '
            '"observation_id": null, "name": null, "value": null, "stringValue": null, '
            '"string_value": null, "comment": null, "source": null, "timestamp": null}')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_feedback AS
        WITH s AS (
            SELECT _ord, locator, o,
                   _fx_id({_s('o', 'observationId', 'observation_id')}) AS event_id,
                   _fx_id({_s('o', 'traceId', 'trace_id')}) AS trace_id,
                   o ->> 'name' AS name,
                   coalesce(nullif({_s('o', 'stringValue', 'string_value')}, ''),
                            _fx_str(json_extract(o, '$.value'))) AS value,
                   try_cast(_fx_str(json_extract(o, '$.value')) AS DOUBLE) AS score,
                   o ->> 'comment' AS comment, lower(o ->> 'source') AS source,
                   o ->> 'timestamp' AS _ts_raw
            FROM _lf_items WHERE kind = 'score')
        SELECT _ord, locator, event_id, trace_id, NULL::VARCHAR AS user_id,
               _fx_ts(_ts_raw) AS ts, _ts_raw, name, value, score,
               {negative_sql('name', 'value', 'score')} AS negative,
               comment, source, json_merge_patch(o, '{drop}') AS attributes,
               CASE WHEN event_id IS NULL AND trace_id IS NULL
                    THEN 'score has neither a trace nor an observation id' END AS _reject,
               left(o::VARCHAR, {RAW}) AS _raw
        FROM s
    """)


register(LangfuseReader())

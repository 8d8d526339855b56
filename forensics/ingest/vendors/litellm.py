"""LiteLLM logs: ``StandardLoggingPayload`` (what every logging callback receives) and
proxy ``SpendLogs`` rows, whose ``metadata``, ``messages``, ``response``, ``request_tags``
and ``proxy_server_request`` are JSON text inside JSON (decoded here).

``model`` is the model the caller asked for (often an alias or model group); the served
model is ``response.model`` (else ``hidden_params.litellm_model_name``), so alias drift
stays visible. ``end_user`` is the user; guardrail results (``guardrail_information``)
become ``moderations`` rows. ``messages`` / ``response`` stay in ``attributes`` as
``litellm.messages`` / ``litellm.response`` unless the canonical columns hold them whole.

>>> row = {"request_id": "ll-2", "call_type": "completion", "status": "success",
...        "startTime": "2026-03-02 16:10:00", "endTime": "2026-03-02 16:10:01.5",
...        "model": "claude-3-5-haiku", "end_user": "end-3", "spend": 0.002,
...        "custom_llm_provider": "anthropic",
...        "messages": [{"role": "user", "content": "status?"}],
...        "response": {"choices": [{"index": 0, "message": {"content": "All good."}}]}}
>>> _ = Path("spend_logs.jsonl").write_text(json.dumps(row))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("spend_logs.jsonl").df["format"][0]
...     got = new.sql("SELECT user_id, model, output_text, cost_usd FROM events").df.row(0)
>>> fmt, got
('litellm', ('end-3', 'claude-3-5-haiku', 'All good.', 0.002))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    drop_records,
    ensure_rejects,
    install,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import stage_spans

ENCODED = ("metadata", "messages", "response", "request_tags", "proxy_server_request")
CONSUMED = ("id", "request_id", "trace_id", "session_id", "call_type", "startTime", "endTime",
            "model", "status", "custom_llm_provider", "messages", "response", "prompt_tokens",
            "completion_tokens", "response_cost", "spend", "end_user", "error_str",
            "guardrail_information")


def _is_litellm(d: dict[str, Any]) -> bool:
    return "call_type" in d and bool({"response_cost", "spend", "hidden_params",
                                      "model_map_information", "api_base"} & set(d))


class LiteLLMReader:
    name = "litellm"
    description = "LiteLLM StandardLoggingPayload records and proxy SpendLogs rows"

    def sniff(self, head: Head) -> bool:
        if head.is_parquet:
            return "call_type" in head.columns and "spend" in head.columns
        return sniff_any(head, _is_litellm)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_litellm(con, path)


def stage_litellm(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    install(con)
    records(con, path)
    ensure_rejects(con)
    decode = ", ".join(
        f"{{'k': '{k}', 'v': _fx_unq(json_extract(j, '$.{k}'))}}" for k in ENCODED)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ll AS
        SELECT _ord, locator, j, _fx_set(j, [{decode}])
                   AS o
        FROM _stage_records
    """)
    empty = "json_type({x}) IS NULL OR {x}::VARCHAR IN ('{{}}', '[]', '\"\"', 'null')"
    drop = "[" + ", ".join(f"'{k}'" for k in CONSUMED) + "]"
    guard = ("coalesce(json_extract(o, '$.guardrail_information'), "
             "json_extract(o, '$.metadata.guardrail_information'))")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT _ord, locator, _fx_id(o ->> 'trace_id') AS trace_id,
               coalesce(o ->> 'id', o ->> 'request_id') AS span_id, NULL::VARCHAR AS parent_id,
               o ->> 'call_type' AS name,
               _fx_str(json_extract(o, '$.startTime')) AS _ts_raw,
               _fx_ts(_fx_str(json_extract(o, '$.startTime'))) AS ts,
               _fx_ts(_fx_str(json_extract(o, '$.endTime'))) AS end_ts,
               CASE WHEN regexp_matches(o ->> 'call_type', 'embed') THEN 'embedding'
                    WHEN regexp_matches(o ->> 'call_type', 'moderation') THEN 'guardrail'
                    WHEN regexp_matches(o ->> 'call_type', 'image|speech|transcription')
                         THEN regexp_replace(o ->> 'call_type', '^a', '')
                    ELSE 'llm' END AS kind_hint,
               CASE WHEN lower(o ->> 'status') IN ('failure', 'error', 'failed') THEN 'error'
                    WHEN (o ->> 'status') IS NOT NULL THEN 'ok' END AS status_code,
               coalesce(nullif(o ->> 'error_str', ''),
                        nullif(o ->> '$.error_information.error_message', ''),
                        nullif(o ->> '$.metadata.error_information.error_message', ''))
                   AS status_message,
               _fx_kvs([
                   {{'k': 'gen_ai.request.model', 'v': json_extract(o, '$.model')}},
                   {{'k': 'gen_ai.response.model', 'v': coalesce(
                       json_extract(o, '$.response.model'),
                       json_extract(o, '$.hidden_params.litellm_model_name'))}},
                   {{'k': 'litellm.provider', 'v': json_extract(o, '$.custom_llm_provider')}},
                   {{'k': 'litellm.messages', 'v': CASE WHEN NOT ({empty.format(
                       x="json_extract(o, '$.messages')")})
                       THEN json_extract(o, '$.messages') END}},
                   {{'k': 'litellm.response', 'v': CASE WHEN NOT ({empty.format(
                       x="json_extract(o, '$.response')")})
                       THEN json_extract(o, '$.response') END}},
                   {{'k': 'gen_ai.usage.input_tokens', 'v': json_extract(o, '$.prompt_tokens')}},
                   {{'k': 'gen_ai.usage.output_tokens',
                     'v': json_extract(o, '$.completion_tokens')}},
                   {{'k': 'gen_ai.usage.cost', 'v': coalesce(json_extract(o, '$.response_cost'),
                                                                   json_extract(o, '$.spend'))}},
                   {{'k': 'user.id', 'v': to_json(coalesce(nullif(o ->> 'end_user', ''),
                       nullif(o ->> '$.metadata.user_api_key_end_user_id', '')))}},
                   {{'k': 'session.id', 'v': to_json(coalesce(nullif(o ->> 'session_id', ''),
                       nullif(o ->> '$.metadata.session_id', '')))}}
                   ]) AS a,
               []::STRUCT(k VARCHAR, v JSON)[] AS r,
               list_transform(CASE json_type({guard})
                                   WHEN 'ARRAY' THEN json_extract({guard}, '$[*]')
                                   WHEN 'OBJECT' THEN [{guard}] ELSE [] END,
                   lambda g: json_object('name', 'guardrail', 'attributes', json_object(
                       'stage', CASE WHEN (g ->> 'guardrail_mode') LIKE '%pre%' THEN 'input'
                                     WHEN (g ->> 'guardrail_mode') LIKE '%post%' THEN 'output'
                                     ELSE g ->> 'guardrail_mode' END,
                       'category', g ->> 'guardrail_name',
                       'flagged', (g ->> 'guardrail_status') NOT IN ('success', 'not_run'),
                       'action', g ->> 'guardrail_status',
                       'score', json_extract(g, '$.confidence_score')))) AS ev,
               _fx_set(_fx_drop(o, {drop}), [{{'k': 'metadata', 'v': CASE WHEN
                   json_type(o, '$.metadata') = 'OBJECT'
                   THEN _fx_drop(json_extract(o, '$.metadata'),
                                                                       ['guardrail_information'])
                   END}}]) AS extra,
               NULL::VARCHAR AS _reject, j::VARCHAR AS _raw
        FROM _ll
    """)
    stage_spans(con)
    con.execute("DROP VIEW _spans")
    con.execute("DROP TABLE _ll")
    drop_records(con)


register(LiteLLMReader())

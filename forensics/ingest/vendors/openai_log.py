"""OpenAI request / response logs: chat completions, the Responses API, legacy
completions, embeddings and moderations, with tool calls.

Shapes: VCR cassettes (YAML ``interactions`` with JSON bodies, as API client test suites
record them), JSON / JSON Lines of ``{request, response}`` pairs (bodies as objects or
JSON text), Batch API input / output lines (``custom_id``, ``body`` / ``response.body``),
and bare response objects (``object: chat.completion | response | text_completion``,
stored-completion lists). The request and response bodies are read like any payload
(messages, model, usage, tool calls) and kept in ``attributes`` as ``openai.request`` /
``openai.response``; the served model (``response.model``) is kept apart from the requested
one. Moderation results become ``moderations`` rows, one per category.

>>> call = {"request": {"url": "https://api.openai.com/v1/chat/completions",
...                     "body": {"model": "gpt-4o", "messages": [
...                         {"role": "user", "content": "Name a color"}]}},
...         "response": {"status_code": 200, "body": {
...             "object": "chat.completion", "created": 1772460000, "model": "gpt-4o-2024-11-20",
...             "choices": [{"index": 0, "finish_reason": "stop",
...                          "message": {"role": "assistant", "content": "Blue"}}]}}}
>>> _ = Path("openai_log.jsonl").write_text(json.dumps(call))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("openai_log.jsonl").df["format"][0]
...     row = new.sql("SELECT model, response_model, output_text FROM events").df.row(0)
>>> fmt, row
('openai', ('gpt-4o', 'gpt-4o-2024-11-20', 'Blue'))
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import yaml

from forensics.core.errors import FormatError
from forensics.ingest import readers
from forensics.ingest.vendors import Head, register
from forensics.ingest.vendors.common import (
    drop_records,
    ensure_rejects,
    install,
    records,
    sniff_any,
)
from forensics.ingest.vendors.semconv import stage_spans

RESPONSE_OBJECTS = ("chat.completion", "response", "text_completion", "list", "embedding",
                    "moderation")
API_PATHS = ("/chat/completions", "/responses", "/completions", "/embeddings", "/moderations")


def _is_cassette(text: str) -> bool:
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    return body.lstrip().startswith("interactions:") and any(p in text for p in API_PATHS)


def _is_openai(d: dict[str, Any]) -> bool:
    req, resp = d.get("request"), d.get("response")
    if isinstance(req, dict) and (isinstance(resp, dict) or resp is None):
        body = req.get("body", req)
        text = body if isinstance(body, str) else json.dumps(body)[:4000]
        return any(k in text for k in ('"messages"', '"input"', '"prompt"')) \
            or any(p in str(req.get("uri", req.get("url", ""))) for p in API_PATHS)
    if "custom_id" in d and ("body" in d or "response" in d):
        return True
    if d.get("object") in RESPONSE_OBJECTS and ("choices" in d or "output" in d
                                                or "results" in d):
        return True
    return d.get("object") == "list" and isinstance(d.get("data"), list) and any(
        isinstance(x, dict) and x.get("object") in RESPONSE_OBJECTS for x in d["data"][:3])


class OpenAILogReader:
    name = "openai"
    description = ("OpenAI request/response logs: VCR cassettes, {request, response} JSON / "
                   "JSONL, Batch API files, response objects (chat, responses, completions, "
                   "embeddings, moderations)")

    def sniff(self, head: Head) -> bool:
        if head.is_parquet:
            return False
        return _is_cassette(head.text) or sniff_any(head, _is_openai)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_openai(con, path)


def _cassette_to_json(path: Path, out: Path) -> None:
    """A VCR cassette (one YAML document) -> a JSON array of its interactions."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not a readable YAML cassette: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("interactions"), list):
        raise FormatError(f"{path}: a cassette holds an 'interactions' list")
    out.write_text(json.dumps(doc["interactions"], default=str), encoding="utf-8")


def stage_openai(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    install(con)
    head_text = path.open("rb").read(4096).decode("utf-8", errors="replace")
    if _is_cassette(head_text) or path.suffix.lower() in (".yaml", ".yml"):
        with tempfile.TemporaryDirectory() as tmp:
            doc = Path(tmp) / "interactions.json"
            _cassette_to_json(path, doc)
            readers.stage_json(con, doc)
        con.execute("UPDATE _stage_records SET locator = replace(locator, 'element', "
                    "'interaction')")
        con.execute("UPDATE _stage_rejects SET locator = replace(locator, 'element', "
                    "'interaction')")
    else:
        records(con, path)
    ensure_rejects(con)
    _exchanges(con)
    stage_spans(con)
    con.execute("DROP VIEW _spans")
    con.execute("DROP TABLE _oa")
    drop_records(con)


def _exchanges(con: duckdb.DuckDBPyConnection) -> None:
    """One row per request / response exchange, then ``_spans``."""
    objects = ", ".join(f"'{o}'" for o in RESPONSE_OBJECTS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _oa AS
        WITH rec AS (
            SELECT _ord, locator, j FROM _stage_records
            WHERE NOT coalesce((j ->> 'object') = 'list' AND json_type(j, '$.data') = 'ARRAY',
                               false)
            UNION ALL
            SELECT _ord * 1048576 + generate_subscripts(json_extract(j, '$.data[*]'), 1),
                   locator || ': data[' || (generate_subscripts(json_extract(j, '$.data[*]'), 1)
                                            - 1) || ']',
                   unnest(json_extract(j, '$.data[*]'))
            FROM _stage_records
            WHERE (j ->> 'object') = 'list' AND json_type(j, '$.data') = 'ARRAY')
        SELECT _ord, locator, j,
               _fx_unq(CASE WHEN json_type(j, '$.request') = 'OBJECT'
                            THEN coalesce(json_extract(j, '$.request.body'),
                                          json_extract(j, '$.request.json'),
                                          json_extract(j, '$.request'))
                            ELSE json_extract(j, '$.body') END) AS req,
               _fx_unq(CASE WHEN (j ->> 'object') IN ({objects}) THEN j
                            WHEN json_type(j, '$.response') = 'OBJECT'
                            THEN coalesce(json_extract(j, '$.response.body.string'),
                                          json_extract(j, '$.response.body'),
                                          json_extract(j, '$.response.content'),
                                          json_extract(j, '$.response')) END) AS resp,
               coalesce(j ->> '$.request.uri', j ->> '$.request.url', j ->> 'url') AS uri,
               coalesce(j ->> '$.response.status.code', j ->> '$.response.status_code',
                        j ->> 'status_code') AS http_status
        FROM rec
    """)
    drop = ('{"request": {"body": null, "json": null}, '
            '"response": {"body": null, "content": null}, "body": null}')
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT _ord, locator, NULL::VARCHAR AS trace_id,
               coalesce(resp ->> 'id', j ->> 'custom_id',
                        j ->> '$.response.headers."x-request-id"[0]',
                        j ->> '$.response.request_id') AS span_id,
               NULL::VARCHAR AS parent_id,
               coalesce(regexp_extract(uri, '/v1/(.*)$', 1), resp ->> 'object') AS name,
               coalesce(_fx_str(json_extract(resp, '$.created')),
                        _fx_str(json_extract(resp, '$.created_at')),
                        j ->> '$.response.headers.Date[0]', j ->> '$.response.headers.date[0]',
                        j ->> 'timestamp', j ->> 'created_at', j ->> 'ts') AS _ts_raw,
               _fx_ts(_ts_raw) AS ts, NULL::TIMESTAMP AS end_ts,
               CASE WHEN uri LIKE '%/embeddings%' OR (resp ->> 'object') = 'list'
                         AND (resp ->> '$.data[0].object') = 'embedding' THEN 'embedding'
                    WHEN uri LIKE '%/moderations%' OR json_exists(resp, '$.results[0].categories')
                         THEN 'guardrail'
                    ELSE 'llm' END AS kind_hint,
               CASE WHEN try_cast(http_status AS INTEGER) >= 400
                         OR json_type(resp, '$.error') = 'OBJECT' THEN 'error' ELSE 'ok' END
                   AS status_code,
               coalesce(resp ->> '$.error.message', j ->> '$.error.message',
                        CASE WHEN try_cast(http_status AS INTEGER) >= 400
                             THEN 'HTTP ' || http_status END) AS status_message,
               _fx_kvs([
                   {{'k': 'openai.request', 'v': req}},
                   {{'k': 'openai.response', 'v': resp}},
                   {{'k': 'gen_ai.provider.name', 'v': to_json(CASE
                       WHEN uri LIKE '%api.openai.com%' THEN 'openai'
                       WHEN uri LIKE '%openai.azure.com%' THEN 'azure.ai.openai'
                       WHEN uri LIKE '%api.anthropic.com%' THEN 'anthropic'
                       WHEN uri LIKE '%api.mistral.ai%' THEN 'mistral_ai'
                       WHEN uri LIKE '%api.groq.com%' THEN 'groq' END)}}]) AS a,
               []::STRUCT(k VARCHAR, v JSON)[] AS r,
               flatten(list_transform(coalesce(json_extract(resp, '$.results[*]'), []),
                   lambda res: list_transform(json_keys(json_extract(res, '$.categories')),
                       lambda k: json_object('name', 'moderation', 'attributes', json_object(
                           'stage', 'input', 'category', k,
                           'flagged', json_extract(res, '$.categories."' || k || '"'),
                           'score', json_extract(res, '$.category_scores."' || k || '"'),
                           'action', CASE WHEN json_extract_string(res, '$.categories."' || k
                                                                        || '"') = 'true'
                                          THEN 'flag' ELSE 'allow' END))))) AS ev,
               CASE WHEN (j ->> 'object') IN ({objects}) THEN '{{}}'::JSON
                    ELSE json_merge_patch(j, '{drop}') END AS extra,
               NULL::VARCHAR AS _reject, j::VARCHAR AS _raw
        FROM _oa
    """)


register(OpenAILogReader())

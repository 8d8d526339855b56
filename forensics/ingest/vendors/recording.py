"""HTTP recordings of model calls, whatever the provider: VCR cassettes (vcrpy's YAML
``interactions``, Ruby VCR's ``http_interactions``), nock recordings (JSON
``[{scope, method, path, body, status, response, rawHeaders}]``), HAR files,
response-only recordings (``{status, headers, body}``) and ``{request, response}``
exchanges (JSON or JSON Lines, as proxies log them) to providers other than OpenAI.

Each interaction is one record: its body decoded (:mod:`.transport`: gzip / deflate /
brotli, ``!!binary``, hex, SSE / NDJSON / AWS event streams), then read by the first
provider module that claims it (Anthropic, Bedrock, Gemini / Vertex AI, Cohere, OpenAI and
OpenAI-compatible servers) into GenAI attributes, and mapped like any span. An
interaction no provider claims (a tool's own HTTP call) is kept as a plain ``http`` span.

The time is the one the response body states (OpenAI ``created``), else its ``Date``
header, else the request's date, else the file's modification time
(``forensics.ts_source`` says so).

>>> import yaml
>>> answer = {"type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
...           "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn",
...           "usage": {"input_tokens": 9, "output_tokens": 3}}
>>> cassette = {"interactions": [{
...     "request": {"method": "POST", "uri": "https://api.anthropic.com/v1/messages",
...                 "body": json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64,
...                                     "messages": [{"role": "user", "content": "Say hi"}]})},
...     "response": {"status": {"code": 200, "message": "OK"},
...                  "headers": {"Date": ["Mon, 02 Mar 2026 10:00:00 GMT"]},
...                  "body": {"string": json.dumps(answer)}}}]}
>>> _ = Path("cassette.yaml").write_text(yaml.safe_dump(cassette))
>>> with forensics.open("new.duckdb") as new:
...     fmt = new.load("cassette.yaml").df["format"][0]
...     row = new.sql("SELECT provider, model, output_text, finish_reason, output_tokens, "
...                   "ts::VARCHAR FROM events").df.row(0)
>>> fmt, row
('recording', ('anthropic', 'claude-sonnet-4-6', 'Hi!', 'stop', 3, '2026-03-02 10:00:00'))
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from pathlib import Path
from typing import Any

import duckdb
import yaml

from forensics.core.errors import FormatError
from forensics.ingest.vendors import Head, anthropic, bedrock, cohere, gemini, openai_api, register
from forensics.ingest.vendors.calls import Call, Exchange, number
from forensics.ingest.vendors.common import install
from forensics.ingest.vendors.semconv import stage_spans
from forensics.ingest.vendors.transport import Body, decode_body, header

# most specific first: Bedrock wraps Anthropic and Cohere bodies; Cohere's and Gemini's
# paths are their own; OpenAI-compatible servers share OpenAI's paths.
PROVIDERS = (bedrock, gemini, cohere, anthropic, openai_api)
KINDS = {"chat": "llm", "text_completion": "llm", "embeddings": "embedding",
         "moderation": "guardrail"}
RAW_LIMIT = 2000
PAIR_FILE_BYTES = 64 << 20   # JSON Lines of exchanges read here (in Python) up to this size


def _yaml_key(text: str) -> str | None:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s == "---":
            continue
        return s.split(":", 1)[0] if ":" in s else None
    return None


def _is_nock(d: Any) -> bool:
    return isinstance(d, dict) and "method" in d and ("scope" in d or "path" in d) and (
        "response" in d or "status" in d)


def _is_response_only(d: Any) -> bool:
    return isinstance(d, dict) and {"status", "body"} <= set(d) and set(d) <= {
        "status", "headers", "body", "statusText", "url"} and isinstance(d["body"], str | dict)


def _is_pair(d: Any) -> bool:
    """A ``{request: {url, body, ...}, response: {...}}`` exchange (proxy and gateway
    logs) to a provider other than OpenAI (those stay with the ``openai`` reader, which
    reads large files of them set-based)."""
    if not (isinstance(d, dict) and isinstance(d.get("request"), dict)
            and isinstance(d.get("response"), dict)):
        return False
    url = d["request"].get("url", d["request"].get("uri"))
    if not isinstance(url, str):
        return False
    probe = Exchange("", "POST", url, None, {}, None, {}, Body("empty"))
    return any(p.claims(probe) for p in (bedrock, gemini, cohere, anthropic))


def _is_har(d: Any) -> bool:
    return isinstance(d, dict) and isinstance(d.get("log"), dict) and isinstance(
        d["log"].get("entries"), list)


class RecordingReader:
    name = "recording"
    description = ("HTTP recordings of model calls (VCR cassettes, nock, HAR, response-only): "
                   "OpenAI and compatible servers, Anthropic, Gemini / Vertex AI, Bedrock, "
                   "Cohere, Mistral; encoded bodies and streams decoded")

    def sniff(self, head: Head) -> bool:
        if head.is_parquet:
            return False
        if _yaml_key(head.text) in ("interactions", "http_interactions"):
            return True
        doc = head.first if head.whole else None
        if isinstance(doc, list) and doc and all(isinstance(x, dict) for x in doc[:5]):
            return all(_is_nock(x) for x in doc[:5]) or all(_is_pair(x) for x in doc[:5])
        if not head.whole and head.lines and head.path.stat().st_size <= PAIR_FILE_BYTES:
            return all(_is_pair(x) for x in head.lines[:5])
        return _is_response_only(doc) or _is_har(doc) or _is_pair(doc)

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        stage_recording(con, path)


# --- reading the container --------------------------------------------------------------

def _headers(value: Any) -> dict[str, Any]:
    """Headers as a dict: dicts as they are, nock's flat ``[name, value, ...]`` list and
    HAR's ``[{name, value}]`` list turned into one."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        return {str(x.get("name")): x.get("value") for x in value}
    if isinstance(value, list):
        return {str(value[i]): value[i + 1] for i in range(0, len(value) - 1, 2)}
    return {}


def _request_body(value: Any) -> Any:
    """A request body: parsed JSON when it is JSON (text, bytes, or already parsed)."""
    if isinstance(value, dict) and set(value) <= {"encoding", "string", "base64_string"}:
        value = value.get("string")
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _vcr(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    key = "interactions" if "interactions" in doc else "http_interactions"
    out = []
    for n, it in enumerate(doc.get(key) or [], 1):
        if not isinstance(it, dict):
            continue
        req, resp = it.get("request") or {}, it.get("response") or {}
        body = resp.get("body")
        if isinstance(body, dict):
            body = body["string"] if "string" in body else body.get("base64_string")
        status = resp.get("status")
        out.append((f"interaction {n}", {
            "method": req.get("method"), "url": req.get("uri"), "request": req.get("body"),
            "req_headers": req.get("headers"),
            "status": status.get("code") if isinstance(status, dict) else status,
            "headers": resp.get("headers"), "body": body, "recorded_at": it.get("recorded_at")}))
    return out


def _nock(doc: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"element {n}", {
        "method": d.get("method"), "url": str(d.get("scope", "")) + str(d.get("path", "")),
        "request": d.get("body"), "req_headers": d.get("reqheaders"), "status": d.get("status"),
        "headers": d.get("rawHeaders") or d.get("headers"), "body": d.get("response"),
        "hex": bool(d.get("responseIsBinary"))}) for n, d in enumerate(doc, 1)]


def _har(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, e in enumerate(doc["log"]["entries"], 1):
        req, resp = e.get("request") or {}, e.get("response") or {}
        content = resp.get("content") or {}
        body: Any = content.get("text")
        if content.get("encoding") == "base64" and isinstance(body, str):
            import base64

            body = base64.b64decode(body)
        out.append((f"entry {n}", {
            "method": req.get("method"), "url": req.get("url"),
            "request": (req.get("postData") or {}).get("text"),
            "req_headers": req.get("headers"), "status": resp.get("status"),
            "headers": resp.get("headers"), "body": body,
            "recorded_at": e.get("startedDateTime")}))
    return out


def _pairs(docs: list[Any], name: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for n, d in enumerate(docs, 1):
        req, resp = d.get("request") or {}, d.get("response") or {}
        body = resp.get("body", resp.get("content", resp.get("json")))
        if isinstance(body, dict) and "string" in body:
            body = body["string"]
        status = resp.get("status", resp.get("status_code"))
        out.append((f"{name} {n}", {
            "method": req.get("method"), "url": req.get("url", req.get("uri")),
            "request": req.get("body", req.get("json", req.get("content"))),
            "req_headers": req.get("headers"),
            "status": status.get("code") if isinstance(status, dict) else status,
            "headers": resp.get("headers"), "body": body,
            "recorded_at": d.get("timestamp", d.get("recorded_at"))}))
    return out


def read_exchanges(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(locator, fields) of each interaction of the recording at ``path``."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if _yaml_key(text) in ("interactions", "http_interactions"):
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise FormatError(f"{path}: not a readable YAML cassette: {exc}") from exc
        return _vcr(doc)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        try:
            return _pairs([json.loads(ln) for ln in lines], "line")
        except json.JSONDecodeError:
            raise FormatError(f"{path}: not a valid JSON recording: {exc}") from exc
    if isinstance(doc, list) and doc and all(_is_pair(d) for d in doc[:5]):
        return _pairs(doc, "element")
    if _is_pair(doc):
        return _pairs([doc], "document")
    if isinstance(doc, list):
        return _nock(doc)
    if _is_har(doc):
        return _har(doc)
    if _is_response_only(doc):
        return [("document", {"method": None, "url": doc.get("url") or "", "request": None,
                              "req_headers": {}, "status": doc.get("status"),
                              "headers": doc.get("headers"), "body": doc.get("body")})]
    raise FormatError(f"{path}: not a recording (top keys: {', '.join(list(doc)[:8])})")


def exchange(locator: str, f: dict[str, Any]) -> Exchange:
    headers = _headers(f.get("headers"))
    return Exchange(locator=locator, method=str(f.get("method") or "POST").upper(),
                    url=str(f.get("url") or ""), request=_request_body(f.get("request")),
                    req_headers=_headers(f.get("req_headers")), status=number(f.get("status")),
                    headers=headers,
                    body=decode_body(f.get("body"), headers, hex_hint=bool(f.get("hex"))),
                    recorded_at=f.get("recorded_at"))


def call_of(ex: Exchange) -> Call | None:
    """The first provider module that claims the exchange reads it."""
    for provider in PROVIDERS:
        if provider.claims(ex):
            return provider.read(ex)
    return None


# --- one span per exchange --------------------------------------------------------------

def _http_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.isoformat()


def _when(ex: Exchange, call: Call | None, mtime: str) -> tuple[str, str | None]:
    """(time text, how it was found when not from the response itself): the time the
    body states (when the call began: OpenAI ``created``, Gemini ``createTime``), else the
    response's ``Date`` header, ..."""
    if call is not None and call.ts:
        return call.ts, None
    found = _http_date(header(ex.headers, "date"))
    if found:
        return found, None
    for value, source in ((_http_date(header(ex.req_headers, "date")), "request Date header"),
                          (ex.recorded_at, "recorded_at")):
        if value:
            return str(value), source
    return mtime, "file modified time"


def _body_value(body: Body) -> Any:
    if body.kind == "json":
        return body.json
    if body.kind in ("sse", "ndjson", "eventstream"):
        return None
    return body.text[:RAW_LIMIT] or None


def span_record(ex: Exchange, call: Call | None, mtime: str) -> dict[str, Any]:
    """The ``_spans`` fields of one exchange, as JSON-ready values."""
    ts, source = _when(ex, call, mtime)
    attrs: dict[str, Any] = {"http.request.method": ex.method, "url.full": ex.url or None,
                             "http.response.status_code": ex.status}
    if ex.body.encoding:
        attrs["http.response.content_encoding"] = ex.body.encoding
    extra: dict[str, Any] = {"forensics.ts_source": source} if source else {}
    failed = ex.failed or (call is not None and call.error is not None)
    error = (call.error if call is not None else None) or (
        f"HTTP {ex.status}" if ex.failed else None)
    if call is None:
        attrs["http.request.body"] = ex.request
        attrs["http.response.body"] = _body_value(ex.body)
        name = f"{ex.method} {ex.host}{ex.path}".strip()
        kind = "http"
    else:
        if call.model is None and ex.request is None:
            call.model = call.response_model  # a response-only recording: the served model
        name = f"{call.operation} {call.model or ''}".strip()
        kind = KINDS.get(call.operation, "llm")
        attrs.update({
            "gen_ai.provider.name": call.provider, "gen_ai.operation.name": call.operation,
            "gen_ai.request.model": call.model, "gen_ai.response.model": call.response_model,
            "gen_ai.response.id": call.response_id,
            "gen_ai.usage.input_tokens": call.input_tokens,
            "gen_ai.usage.output_tokens": call.output_tokens,
            "gen_ai.response.finish_reasons": call.finish or None,
            "gen_ai.system_instructions": call.system or None,
            "gen_ai.input.messages": call.inputs or None,
            "gen_ai.output.messages": call.outputs or None,
            "gen_ai.request.stream": call.stream or None,
            "gen_ai.usage.details": call.usage or None,
            "http.request.body": ex.request,
            "http.response.body": call.response if call.response is not None
            else _body_value(ex.body),
            **call.extra})
        if call.other_choices:
            attrs["gen_ai.response.choice_count"] = 1 + len(call.other_choices)
            attrs["gen_ai.response.other_choices"] = call.other_choices
        if call.stream:
            attrs["http.response.stream_events"] = len(ex.body.items)
    return {"span_id": call.response_id if call is not None else None, "name": name,
            "ts": ts, "kind": kind, "status": "error" if failed else "ok", "error": error,
            "attrs": {k: v for k, v in attrs.items() if v is not None},
            "events": call.events if call is not None else [], "extra": extra}


def stage_recording(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    install(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _stage_rejects (locator VARCHAR, reason VARCHAR, "
                "raw VARCHAR)")
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(
        tzinfo=None).isoformat()
    rows = []
    for n, (locator, fields) in enumerate(read_exchanges(path), 1):
        raw = json.dumps(fields, default=_short)[:RAW_LIMIT]
        try:
            ex = exchange(locator, fields)
            record = span_record(ex, call_of(ex), mtime)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            con.execute("INSERT INTO _stage_rejects VALUES (?, ?, ?)",
                        [locator, f"cannot read the exchange: {type(exc).__name__}: {exc}", raw])
            continue
        rows.append((n, locator, json.dumps(record, default=str), raw))
    con.execute("CREATE OR REPLACE TEMP TABLE _rec (_ord BIGINT, locator VARCHAR, j JSON, "
                "raw VARCHAR)")
    if rows:
        con.executemany("INSERT INTO _rec VALUES (?, ?, ?, ?)", rows)
    con.execute("""
        CREATE OR REPLACE TEMP VIEW _spans AS
        SELECT _ord, locator, NULL::VARCHAR AS trace_id, j ->> 'span_id' AS span_id,
               NULL::VARCHAR AS parent_id, j ->> 'name' AS name, j ->> 'ts' AS _ts_raw,
               _fx_ts(j ->> 'ts') AS ts, NULL::TIMESTAMP AS end_ts, j ->> 'kind' AS kind_hint,
               j ->> 'status' AS status_code, j ->> 'error' AS status_message,
               _fx_kvobj(json_extract(j, '$.attrs')) AS a,
               []::STRUCT(k VARCHAR, v JSON)[] AS r,
               coalesce(json_extract(j, '$.events[*]'), []) AS ev,
               json_extract(j, '$.extra') AS extra, NULL::VARCHAR AS _reject, raw AS _raw
        FROM _rec
    """)
    stage_spans(con)
    con.execute("DROP VIEW _spans")
    con.execute("DROP TABLE _rec")


def _short(value: Any) -> str:
    """Bytes in a rejected record's text: their length, not their content."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)


register(RecordingReader(), before="openai")

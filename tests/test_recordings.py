"""Recordings of model calls and the shapes around them, on files written here: bodies in
every transfer encoding, streams of every provider assembled, one finish-reason
vocabulary, Langfuse ingestion batches, grouped span lists, usage roll-ups, OTLP log
bodies, and shapes no reader knows refused with what was seen."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
import yaml

from forensics.core.errors import FormatError
from forensics.ingest.vendors import detect_format
from forensics.ingest.vendors.transport import decode_body, eventstream, sse


def rows(case: Any, sql: str = "SELECT * FROM events ORDER BY locator") -> list[dict[str, Any]]:
    out = case.sql(sql).rows()
    for row in out:
        if isinstance(row.get("attributes"), str):
            row["attributes"] = json.loads(row["attributes"])
    return list(out)


def frame(event: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message, CRCs and all."""
    name = b":event-type"
    headers = bytes([len(name)]) + name + b"\x07" + struct.pack(">H", len(event)) + event.encode()
    body = json.dumps(payload).encode()
    total = 16 + len(headers) + len(body)
    prelude = struct.pack(">II", total, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + body
    return head + struct.pack(">I", zlib.crc32(head))


def test_transfer_encodings_are_undone() -> None:
    doc = {"id": "x", "n": 1}
    raw = json.dumps(doc).encode()
    assert decode_body(gzip.compress(raw), {}).json == doc
    assert decode_body(zlib.compress(raw), {"Content-Encoding": ["deflate"]}).json == doc
    assert decode_body(zlib.compress(raw)[2:-4], {"content-encoding": "deflate"}).json == doc
    body = decode_body(brotli.compress(raw), {"Content-Encoding": "br"})
    assert (body.json, body.encoding) == (doc, ["br"])
    assert decode_body(raw.hex(), {}, hex_hint=True).json == doc
    assert decode_body(doc, {}).json == doc  # a recorder that stored the body parsed


def test_stream_formats() -> None:
    items = sse("event: a\ndata: {\"x\": 1}\n\n: comment\ndata: line1\ndata: line2\n\n"
                "data: [DONE]\n")
    assert [(i.event, i.data) for i in items] == [("a", {"x": 1}), (None, "line1\nline2"),
                                                  (None, "[DONE]")]
    nd = decode_body('{"event_type": "stream-start"}\n{"event_type": "stream-end"}\n',
                     {"content-type": "application/stream+json"})
    assert (nd.kind, [i.event for i in nd.items]) == ("ndjson", ["stream-start", "stream-end"])
    wrapped = {"bytes": base64.b64encode(b'{"type": "message_stop"}').decode()}
    data = frame("messageStart", {"role": "assistant"}) + frame("chunk", wrapped)
    assert [(i.event, i.data) for i in eventstream(data)] == [
        ("messageStart", {"role": "assistant"}), ("chunk", {"type": "message_stop"})]


def cassette(tmp_path: Path) -> Path:
    """Three calls: Anthropic (brotli body), Gemini (SSE stream), Bedrock ConverseStream
    (binary event stream, a tool call in pieces), and a tool's own HTTP call."""
    anthropic = {"id": "msg_1", "type": "message", "role": "assistant",
                 "model": "claude-x-1", "stop_reason": "max_tokens",
                 "content": [{"type": "text", "text": "Bonjour"}],
                 "usage": {"input_tokens": 3, "output_tokens": 2,
                           "cache_read_input_tokens": 10}}
    gemini = "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
         "modelVersion": "gemini-x"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                         "finishReason": "SAFETY"}],
         "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
         "modelVersion": "gemini-x", "responseId": "g-1"}])
    bedrock = (frame("messageStart", {"role": "assistant"})
               + frame("contentBlockStart", {"contentBlockIndex": 0, "start": {
                   "toolUse": {"toolUseId": "t1", "name": "lookup"}}})
               + frame("contentBlockDelta", {"contentBlockIndex": 0,
                                             "delta": {"toolUse": {"input": '{"q": '}}})
               + frame("contentBlockDelta", {"contentBlockIndex": 0,
                                             "delta": {"toolUse": {"input": '"tea"}'}}})
               + frame("messageStop", {"stopReason": "tool_use"})
               + frame("metadata", {"usage": {"inputTokens": 7, "outputTokens": 5}}))
    date = {"Date": ["Mon, 02 Mar 2026 10:00:00 GMT"]}

    def interaction(uri: str, req: Any, body: Any, headers: dict[str, Any]) -> dict[str, Any]:
        return {"request": {"method": "POST", "uri": uri, "body": json.dumps(req),
                            "headers": {}},
                "response": {"status": {"code": 200, "message": "OK"},
                             "headers": {**date, **headers}, "body": {"string": body}}}

    doc = {"interactions": [
        interaction("https://api.anthropic.com/v1/messages",
                    {"model": "claude-x", "system": [{"type": "text", "text": "Be brief."}],
                     "messages": [{"role": "user", "content": "Say hello in French"}]},
                    brotli.compress(json.dumps(anthropic).encode()),
                    {"Content-Encoding": ["br"]}),
        interaction("https://generativelanguage.googleapis.com/v1beta/models/gemini-x:"
                    "streamGenerateContent?alt=sse",
                    {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]},
                    gemini, {}),
        interaction("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                    "anthropic.claude-y-v1%3A0/converse-stream",
                    {"messages": [{"role": "user", "content": [{"text": "Find tea"}]}]},
                    bedrock, {"Content-Type": ["application/vnd.amazon.eventstream"]}),
        interaction("https://weather.example/api", {"city": "Paris"}, '{"temp": 12}', {})],
        "version": 1}
    path = tmp_path / "calls.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")     # bytes -> !!binary
    return path


def test_a_cassette_of_several_providers(case: Any, tmp_path: Path) -> None:
    path = cassette(tmp_path)
    assert "!!binary" in path.read_text()
    row = case.load(path).rows()[0]
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("recording", 4, 0)
    claude, gem, bedrock, tool = rows(case)
    assert (claude["provider"], claude["model"], claude["response_model"], claude["output_text"],
            claude["system_prompt"], claude["input_tokens"], claude["output_tokens"],
            claude["finish_reason"], claude["ts"]) == (
        "anthropic", "claude-x", "claude-x-1", "Bonjour", "Be brief.", 13, 2, "length",
        "2026-03-02T10:00:00")
    assert claude["attributes"]["http.response.content_encoding"] == ["br"]
    assert (gem["model"], gem["output_text"], gem["input_tokens"], gem["finish_reason"],
            gem["event_id"]) == ("gemini-x", "Hello", 4, "content_filter", "g-1")
    assert (bedrock["model"], bedrock["tool_name"], json.loads(bedrock["tool_args"]),
            bedrock["finish_reason"], bedrock["output_tokens"]) == (
        "anthropic.claude-y-v1:0", "lookup", {"q": "tea"}, "tool_calls", 5)
    assert (tool["kind"], tool["name"], tool["attributes"]["http.response.body"]) == (
        "http", "POST weather.example/api", {"temp": 12})


def test_finish_reasons_in_one_vocabulary(case: Any, tmp_path: Path) -> None:
    """A list held as JSON text is read as a list, and every provider's word is mapped."""
    spans = [{"name": f"chat {i}", "context": {"trace_id": "a" * 32,
                                                "span_id": f"{i + 1:016x}"},
              "start_time": "2026-03-02T10:00:00Z",
              "attributes": {"gen_ai.request.model": "m",
                             "gen_ai.response.finish_reasons": value}}
             for i, value in enumerate(['["stop"]', ["end_turn"], "MAX_TOKENS", ["tool_use"],
                                        "COMPLETE", "SAFETY", "weird_new_reason"])]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(spans), encoding="utf-8")
    case.load(path)
    got = [r["finish_reason"] for r in rows(case, "SELECT finish_reason FROM events "
                                                  "ORDER BY span_id")]
    assert got == ["stop", "stop", "length", "tool_calls", "stop", "content_filter",
                   "weird_new_reason"]


def test_langfuse_ingestion_batch(case: Any, tmp_path: Path) -> None:
    batch = {"batch": [
        {"id": "e1", "type": "trace-create", "timestamp": "2026-03-02T10:00:00Z",
         "body": {"id": "tr-1", "name": "support", "userId": "u-7"}},
        {"id": "e2", "type": "generation-create", "timestamp": "2026-03-02T10:00:01Z",
         "body": {"id": "gen-1", "traceId": "tr-1", "name": "chat", "model": "gpt-x",
                  "startTime": "2026-03-02T10:00:01Z", "input": [{"role": "user",
                                                                   "content": "hi"}]}},
        {"id": "e3", "type": "generation-update", "timestamp": "2026-03-02T10:00:02Z",
         "body": {"id": "gen-1", "endTime": "2026-03-02T10:00:02Z", "output": "hello",
                  "usage": {"input": 3, "output": 1, "totalCost": 0.5}}},
        {"id": "e4", "type": "span-create", "timestamp": "2026-03-02T10:00:01Z",
         "body": {"id": "sp-1", "name": "retrieve", "startTime": "2026-03-02T10:00:01Z"}},
        {"id": "e5", "type": "score-create", "timestamp": "2026-03-02T10:00:03Z",
         "body": {"id": "sc-1", "traceId": "tr-1", "name": "helpfulness", "value": 0.1}}],
        "metadata": {"batch_size": 5, "sdk_integration": "litellm"}}
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch), encoding="utf-8")
    assert detect_format(path) == "langfuse"
    row = case.load(path).rows()[0]
    assert (row["rows_rejected"], row["target"]) == (0, "events+feedback")
    gen, span = rows(case, "SELECT * FROM events ORDER BY event_id")
    assert (gen["event_id"], gen["model"], gen["input_text"], gen["output_text"],
            gen["input_tokens"], gen["cost_usd"], gen["duration_ms"], gen["user_id"]) == (
        "gen-1", "gpt-x", "hi", "hello", 3, 0.5, 1000.0, "u-7")
    assert (span["kind"], span["trace_id"]) == ("span", "tr-1")   # the batch's one trace
    (fb,) = rows(case, "SELECT * FROM feedback")
    assert (fb["trace_id"], fb["negative"]) == ("tr-1", True)


def test_span_lists_grouped_under_keys(case: Any, tmp_path: Path) -> None:
    def span(i: int, parent: int | None, attrs: dict[str, Any]) -> dict[str, Any]:
        return {"name": f"s{i}", "spanContext": {"traceId": "b" * 32, "spanId": f"{i:016x}"},
                "parentSpanId": f"{parent:016x}" if parent else None,
                "startTime": [1772445600, 0], "endTime": [1772445601, 0], "attributes": attrs}

    doc = {"generateText": [span(1, None, {"ai.operationId": "ai.generateText"}),
                            span(2, 1, {"ai.operationId": "ai.generateText.doGenerate",
                                        "ai.model.id": "gpt-x", "ai.response.text": "ok",
                                        "gen_ai.usage.input_tokens": 2})],
           "embed": [span(3, None, {"ai.operationId": "ai.embed.doEmbed",
                                    "ai.model.id": "emb-x"})]}
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    row = case.load(path).rows()[0]
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("otel-sdk", 3, 0)
    got = [(r["locator"], r["kind"], r["model"], r["attributes"]["forensics.group"])
           for r in rows(case)]
    assert got == [("document: embed[0]", "embedding", "emb-x", "embed"),
                   ("document: generateText[0]", "chain", None, "generateText"),
                   ("document: generateText[1]", "llm", "gpt-x", "generateText")]
    assert all(r["ts"].startswith("2026-03-02") for r in rows(case))  # not the file's mtime


def test_usage_rollups_are_not_counted_twice(case: Any, tmp_path: Path) -> None:
    def span(i: int, parent: int | None, op: str, tokens: tuple[int, int]) -> dict[str, Any]:
        return {"name": op, "context": {"trace_id": "c" * 32, "span_id": f"{i:016x}"},
                "parent_id": f"{parent:016x}" if parent else None,
                "start_time": f"2026-03-02T10:00:0{i}Z",
                "attributes": {"gen_ai.operation.name": op, "gen_ai.request.model": "m",
                               "gen_ai.usage.input_tokens": tokens[0],
                               "gen_ai.usage.output_tokens": tokens[1]}}

    spans = [span(1, None, "invoke_agent", (30, 12)), span(2, 1, "chat", (10, 5)),
             span(3, 1, "execute_tool", (0, 0)), span(4, 3, "chat", (20, 7))]
    path = tmp_path / "agent.json"
    path.write_text(json.dumps(spans), encoding="utf-8")
    case.load(path)
    (total,) = rows(case, "SELECT sum(input_tokens) AS i, sum(output_tokens) AS o FROM events")
    assert (total["i"], total["o"]) == (30, 12)
    agent, _, tool, _ = rows(case, "SELECT * FROM events ORDER BY span_id")
    assert agent["input_tokens"] is None
    assert agent["attributes"]["forensics.usage_rollup"]["input_tokens"] == 30
    assert tool["attributes"]["forensics.usage_rollup"]["output_tokens"] == 0


def test_otlp_log_records_keep_plain_bodies(case: Any, tmp_path: Path) -> None:
    doc = {"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"logRecords": [
        {"timeUnixNano": "1772445600000000000", "severityText": "WARN",
         "body": {"stringValue": "retrying the model call"}}]}]}]}
    path = tmp_path / "logs.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    case.load(path)
    (ev,) = rows(case)
    assert ev["attributes"]["events"][0]["body"] == "retrying the model call"


@pytest.mark.parametrize(("text", "seen"), [
    ("settings:\n  retries: 3\n", "first line 'settings:'"),
    ('{"runs": {"a": {"x": 1}}, "meta": {"v": 2}}', "top keys: runs, meta")])
def test_unknown_shapes_are_refused_with_what_was_seen(case: Any, tmp_path: Path, text: str,
                                                       seen: str) -> None:
    path = tmp_path / "odd.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError) as err:
        case.load(path)
    assert seen in str(err.value) and "recording" in str(err.value)
    assert case.count("evidence") == 0


def test_request_response_pairs_to_other_providers(case: Any, tmp_path: Path) -> None:
    """A proxy's JSON Lines of exchanges with Anthropic: read as recordings, not as OpenAI
    logs; a failed call keeps the provider's error."""
    def pair(ts: str, text: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"timestamp": ts, "request": {
            "url": "https://api.anthropic.com/v1/messages", "method": "POST",
            "body": {"model": "claude-x", "messages": [{"role": "user", "content": text}]}},
            "response": {"status_code": status, "headers": {}, "body": body}}

    ok = {"id": "m1", "type": "message", "model": "claude-x-1", "stop_reason": "end_turn",
          "content": [{"type": "text", "text": "hello"}],
          "usage": {"input_tokens": 1, "output_tokens": 1}}
    failed = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    path = tmp_path / "proxy.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in [
        pair("2026-03-02T10:00:00Z", "hi", 200, ok),
        pair("2026-03-02T10:00:05Z", "again", 529, failed)]), encoding="utf-8")
    row = case.load(path).rows()[0]
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("recording", 2, 0)
    first, second = rows(case)
    assert (first["output_text"], first["finish_reason"], first["ts"]) == (
        "hello", "stop", "2026-03-02T10:00:00")
    assert (second["status"], second["error"], second["input_text"]) == (
        "error", "Overloaded", "again")

"""Small hand-written files in each vendor shape (and broken ones), for tests/test_formats.py.

Each function writes one file into a folder and returns its path. The shapes follow the
producers' documentation and the real samples in ../shared/corpus; the values are ours.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

T0 = 1_772_445_600_000_000_000          # 2026-03-02T10:00:00Z in unix nanoseconds
TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, LLM, TOOL = "1111111111111111", "2222222222222222", "3333333333333333"


def _lines(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _s(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _kvlist(obj: dict[str, Any]) -> dict[str, Any]:
    """A Python value as an OTLP AnyValue, nested to any depth."""
    return {"kvlistValue": {"values": [{"key": k, "value": _any(v)} for k, v in obj.items()]}}


def _any(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return _kvlist(v)
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any(x) for x in v]}}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": v}


def _traces(spans: list[dict[str, Any]], service: str = "support-api",
            key: str = "resourceSpans", scope_key: str = "scopeSpans") -> dict[str, Any]:
    scope_name = "scope" if scope_key == "scopeSpans" else "instrumentationLibrary"
    return {key: [{"resource": {"attributes": [_s("service.name", service),
                                               _s("service.version", "2026.03.1")]},
                   scope_key: [{scope_name: {"name": "opentelemetry.instrumentation.openai_v2",
                                             "version": "2.1b0"},
                                "spans": spans}]}]}


def otlp_genai(folder: Path) -> Path:
    """Three Collector lines: current GenAI conventions (messages as JSON strings, a tool
    child span, a moderation event, retrieved documents), the 1.27-era span events with
    ``gen_ai.system`` and ``prompt_tokens``, and an old producer (``batches``,
    ``instrumentationLibrarySpans``, base64 ids, enum names)."""
    chat = {
        "traceId": TRACE, "spanId": LLM, "parentSpanId": ROOT, "name": "chat gpt-4o",
        "kind": 3, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1_250_000_000),
        "attributes": [
            _s("gen_ai.operation.name", "chat"), _s("gen_ai.provider.name", "openai"),
            _s("gen_ai.request.model", "gpt-4o"), _s("gen_ai.response.model", "gpt-4o-2024-11-20"),
            _i("gen_ai.usage.input_tokens", 120), _i("gen_ai.usage.output_tokens", 42),
            {"key": "gen_ai.response.finish_reasons",
             "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}},
            _s("gen_ai.system_instructions",
               json.dumps([{"type": "text", "content": "You are Lumen's support assistant."}])),
            _s("gen_ai.input.messages", json.dumps([
                {"role": "user",
                 "parts": [{"type": "text", "content": "How do I export notes?"}]}])),
            _s("gen_ai.output.messages", json.dumps([
                {"role": "assistant", "parts": [{"type": "text",
                                                 "content": "Open Settings > Export."}],
                 "finish_reason": "stop"}])),
            _s("gen_ai.conversation.id", "conv-7"), _s("user.id", "u-42"),
            _s("gen_ai.prompt.name", "support_system"), _s("gen_ai.prompt.version", "v13"),
            _s("gen_ai.data_source.id", "kb-2026-03-01"),
            _s("gen_ai.retrieval.documents", json.dumps([
                {"id": "kb/export.md", "score": 0.91, "content": "Settings > Export"},
                {"id": "kb/sync.md", "score": 0.42, "content": "Sync runs hourly"}])),
            _s("tenant", "northwind"), {"key": "http.retries", "value": {"intValue": 2}}],
        "events": [{"timeUnixNano": str(T0 + 5), "name": "moderation", "attributes": [
            _s("moderation.stage", "output"), _s("moderation.category", "harassment"),
            {"key": "moderation.flagged", "value": {"boolValue": False}},
            {"key": "moderation.score", "value": {"doubleValue": 0.02}},
            _s("moderation.action", "allow")]}],
        "status": {"code": 1}}
    tool = {
        "traceId": TRACE, "spanId": TOOL, "parentSpanId": LLM, "name": "execute_tool search",
        "kind": 1, "startTimeUnixNano": str(T0 + 100),
        "endTimeUnixNano": str(T0 + 300_000_000),
        "attributes": [_s("gen_ai.operation.name", "execute_tool"),
                       _s("gen_ai.tool.name", "search"),
                       _s("gen_ai.tool.call.arguments", '{"q": "export"}'),
                       _s("gen_ai.tool.call.result", "3 results")],
        "status": {"code": 2, "message": "TimeoutError: search took 30s"}}
    old = {
        "traceId": "a" * 32, "spanId": "b" * 16, "name": "openai.chat",
        "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": str(T0 + 10**9),
        "endTimeUnixNano": str(T0 + 2 * 10**9),
        "attributes": [_s("gen_ai.system", "openai"), _s("gen_ai.request.model", "gpt-4o-mini"),
                       _i("gen_ai.usage.prompt_tokens", 11),
                       _i("gen_ai.usage.completion_tokens", 7)],
        "events": [
            {"timeUnixNano": str(T0 + 10**9), "name": "gen_ai.content.prompt", "attributes": [
                _s("gen_ai.prompt", json.dumps([{"role": "user", "content": "Say hi"}]))]},
            {"timeUnixNano": str(T0 + 2 * 10**9), "name": "gen_ai.content.completion",
             "attributes": [_s("gen_ai.completion", json.dumps(
                 [{"role": "assistant", "content": "Hi!"}]))]}],
        "status": {"code": "STATUS_CODE_UNSET"}}
    b64 = {
        "traceId": base64.b64encode(bytes.fromhex("c" * 32)).decode(),
        "spanId": base64.b64encode(bytes.fromhex("d" * 16)).decode(),
        "name": "legacy", "kind": "SPAN_KIND_INTERNAL",
        "startTimeUnixNano": str(T0 + 3 * 10**9), "endTimeUnixNano": str(T0 + 4 * 10**9),
        "attributes": [_s("llm.model_name", "claude-3-5-sonnet"), _s("input.value", "ping")],
        "status": {"code": "STATUS_CODE_ERROR", "message": "upstream 502"}}
    return _lines(folder / "otlp_genai.jsonl", [
        _traces([chat, tool]), _traces([old]),
        _traces([b64], key="batches", scope_key="instrumentationLibrarySpans")])


def otlp_logs(folder: Path) -> Path:
    """Spans without content plus the GenAI events (log records) that carry it, joined by
    span id; events of a span that is not in the file; an evaluation result."""
    span = {"traceId": TRACE, "spanId": LLM, "name": "chat gpt-4o-mini", "kind": 3,
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 800_000_000),
            "attributes": [_s("gen_ai.system", "openai"), _s("gen_ai.request.model", "gpt-4o-mini"),
                           _i("gen_ai.usage.input_tokens", 30),
                           _i("gen_ai.usage.output_tokens", 9)],
            "status": {}}

    def log(name: str, body: Any, span_id: str = LLM, attrs: list[Any] | None = None,
            trace: str = TRACE) -> dict[str, Any]:
        rec = {"timeUnixNano": str(T0 + 1000), "observedTimeUnixNano": str(T0 + 2000),
               "traceId": trace, "spanId": span_id,
               "attributes": [_s("event.name", name), _s("gen_ai.system", "openai"),
                              *(attrs or [])]}
        if body is not None:
            rec["body"] = _any(body)
        return rec

    logs = [
        log("gen_ai.system.message", {"content": "Be brief."}),
        log("gen_ai.user.message", {"content": "Where is my order?"}),
        log("gen_ai.choice", {"index": 0, "finish_reason": "tool_calls", "message": {
            "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "track_order", "arguments": '{"id": "A-1"}'}}]}}),
        log("gen_ai.user.message", {"content": "orphan question"}, span_id="4" * 16),
        log("gen_ai.evaluation.result", None, attrs=[
            _s("gen_ai.evaluation.name", "relevance"),
            {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.2}},
            _s("gen_ai.evaluation.score.label", "irrelevant"),
            _s("gen_ai.evaluation.explanation", "answer does not address the order")]),
    ]
    logs_data = {"resourceLogs": [{"resource": {"attributes": [_s("service.name", "shop")]},
                                   "scopeLogs": [{"scope": {"name": "openai"},
                                                  "logRecords": logs}]}]}
    return _lines(folder / "otlp_logs.jsonl", [_traces([span], service="shop"), logs_data])


def otlp_broken(folder: Path) -> Path:
    """A good line, a truncated line, a line that is JSON but not OTLP, a span without a
    start time, one with a non-numeric token count, and a repeated span id."""
    good = _traces([{"traceId": TRACE, "spanId": LLM, "name": "ok",
                     "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1),
                     "attributes": [_s("gen_ai.request.model", "m")]}])
    bad_spans = _traces([
        {"traceId": TRACE, "spanId": "5" * 16, "name": "no time", "attributes": []},
        {"traceId": TRACE, "spanId": "6" * 16, "name": "bad tokens",
         "startTimeUnixNano": str(T0), "attributes": [
             _s("gen_ai.usage.input_tokens", "lots")]},
        {"traceId": TRACE, "spanId": LLM, "name": "repeat", "startTimeUnixNano": str(T0)}])
    text = (json.dumps(good) + "\n" + json.dumps(good)[:80] + "\n" + '{"hello": "world"}\n'
            + json.dumps(bad_spans) + "\n")
    path = folder / "otlp_broken.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def phoenix_spans(folder: Path) -> Path:
    """Phoenix span JSON (one span per line): an LLM span with flattened OpenInference
    messages, retrieved documents, prompt template version and a metadata JSON string, a
    retriever, a guardrail and a tool span."""
    base = {"context": {"trace_id": "t-1"}, "status_code": "OK", "status_message": "",
            "events": []}
    llm = {**base, "name": "ChatOpenAI", "span_kind": "LLM",
           "context": {"trace_id": "t-1", "span_id": "s-llm"}, "parent_id": "s-root",
           "start_time": "2026-03-02T10:00:01+00:00", "end_time": "2026-03-02T10:00:02.5+00:00",
           "attributes": {
               "llm.model_name": "gpt-4o-2024-08-06", "llm.provider": "openai",
               "llm.invocation_parameters": json.dumps({"model": "gpt-4o", "temperature": 0}),
               "llm.input_messages.0.message.role": "system",
               "llm.input_messages.0.message.content": "Answer from the handbook.",
               "llm.input_messages.1.message.role": "user",
               "llm.input_messages.1.message.content": "How many vacation days?",
               "llm.output_messages.0.message.role": "assistant",
               "llm.output_messages.0.message.content": "25 days a year.",
               "llm.token_count.prompt": 310, "llm.token_count.completion": 12,
               "llm.prompt_template.version": "v7", "session.id": "sess-9", "user.id": "u-7",
               "retrieval.documents.0.document.id": "hr/leave.md",
               "retrieval.documents.0.document.score": 0.88,
               "retrieval.documents.0.document.content": "Employees get 25 days.",
               "retrieval.documents.1.document.id": "hr/holidays.md",
               "retrieval.documents.1.document.score": 0.31,
               "retrieval.documents.1.document.content": "Public holidays list.",
               "metadata": json.dumps({"feature": "doc_qa", "tenant": "contoso",
                                       "prompt_name": "docqa_answer"})}}
    retriever = {**base, "name": "retrieve", "span_kind": "RETRIEVER",
                 "context": {"trace_id": "t-1", "span_id": "s-ret"}, "parent_id": "s-root",
                 "start_time": "2026-03-02T10:00:00.5+00:00",
                 "end_time": "2026-03-02T10:00:00.9+00:00",
                 "attributes": {"input.value": "vacation days",
                                "retrieval.documents.0.document.id": "hr/leave.md",
                                "retrieval.documents.0.document.content": "Employees get 25 days.",
                                "retrieval.documents.0.document.metadata": '{"page": 3}'}}
    guard = {**base, "name": "pii-guard", "span_kind": "GUARDRAIL",
             "context": {"trace_id": "t-1", "span_id": "s-guard"}, "parent_id": "s-root",
             "start_time": "2026-03-02T10:00:03+00:00", "end_time": "2026-03-02T10:00:03+00:00",
             "attributes": {"guardrail.category": "pii", "guardrail.flagged": True,
                            "guardrail.action": "redact", "guardrail.stage": "output"}}
    tool = {**base, "name": "lookup_policy", "span_kind": "TOOL",
            "context": {"trace_id": "t-1", "span_id": "s-tool"}, "parent_id": "s-llm",
            "start_time": "2026-03-02T10:00:04+00:00", "end_time": "2026-03-02T10:00:04.1+00:00",
            "status_code": "ERROR", "status_message": "KeyError: 'policy'",
            "attributes": {"tool.name": "lookup_policy", "input.value": '{"topic": "leave"}'}}
    return _lines(folder / "phoenix_spans.jsonl", [llm, retriever, guard, tool])


def phoenix_dataframe_rows() -> list[dict[str, Any]]:
    """Rows of a Phoenix span dataframe (``get_spans_dataframe``): ``attributes.*``
    columns, message and document lists of dicts."""
    return [{
        "name": "ChatOpenAI", "span_kind": "LLM", "parent_id": None,
        "start_time": "2026-03-02T10:00:01+00:00", "end_time": "2026-03-02T10:00:02+00:00",
        "status_code": "OK", "status_message": "",
        "context.span_id": "df-1", "context.trace_id": "dt-1",
        "attributes.llm.model_name": "gpt-4o-mini", "attributes.llm.token_count.prompt": 20,
        "attributes.llm.token_count.completion": 5,
        "attributes.llm.input_messages": [{"message.role": "user",
                                           "message.content": "hi there"}],
        "attributes.llm.output_messages": [{"message.role": "assistant",
                                            "message.content": "hello!"}],
        "attributes.retrieval.documents": [{"document.id": "d1", "document.content": "c1",
                                            "document.score": 0.5}],
        "attributes.session.id": "ps-1", "attributes.user.id": "pu-1",
    }, {
        "name": "ChatOpenAI", "span_kind": "LLM", "parent_id": "df-1",
        "start_time": "2026-03-02T10:00:03+00:00", "end_time": "2026-03-02T10:00:04+00:00",
        "status_code": "OK", "status_message": "",
        "context.span_id": "df-2", "context.trace_id": "dt-1",
        "attributes.llm.model_name": "gpt-4o-mini", "attributes.llm.token_count.prompt": 21,
        "attributes.llm.token_count.completion": 6,
        "attributes.llm.input_messages": [{"message.role": "user", "message.content": "bye"}],
        "attributes.llm.output_messages": [{"message.role": "assistant",
                                            "message.content": "see you"}],
        "attributes.retrieval.documents": None,
        "attributes.session.id": "ps-1", "attributes.user.id": "pu-1",
    }]


def sdk_dump(folder: Path) -> Path:
    """A Python ``ConsoleSpanExporter`` span (``span.to_json()``) and a JS ReadableSpan."""
    py = {"name": "chat claude", "context": {"trace_id": "0x" + "e" * 32,
                                             "span_id": "0x" + "f" * 16, "trace_state": "[]"},
          "kind": "SpanKind.CLIENT", "parent_id": None,
          "start_time": "2026-03-02T11:00:00.000000Z", "end_time": "2026-03-02T11:00:01.500000Z",
          "status": {"status_code": "UNSET"},
          "attributes": {"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-haiku",
                         "gen_ai.usage.input_tokens": 15, "gen_ai.usage.output_tokens": 4,
                         "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "2+2?",
                         "gen_ai.completion.0.role": "assistant",
                         "gen_ai.completion.0.content": "4",
                         "gen_ai.completion.0.finish_reason": "end_turn"},
          "events": [], "links": [],
          "resource": {"attributes": {"service.name": "calc-bot"}, "schema_url": ""}}
    js = {"name": "ai.generateText.doGenerate",
          "spanContext": {"traceId": "1" * 32, "spanId": "2" * 16},
          "attributes": {"ai.operationId": "ai.generateText.doGenerate",
                         "ai.model.id": "gpt-4o-mini", "ai.model.provider": "openai.chat",
                         "ai.prompt.messages": json.dumps([{"role": "user", "content": [
                             {"type": "text", "text": "Write a haiku."}]}]),
                         "ai.response.text": "Code flows...", "ai.usage.promptTokens": 9,
                         "ai.usage.completionTokens": 5, "ai.telemetry.functionId": "haiku"},
          "status": {"code": 0}, "startTime": [1772449200, 5000000],
          "endTime": [1772449201, 0], "events": []}
    return _lines(folder / "sdk_spans.jsonl", [py, js])


def langfuse_export(folder: Path) -> Path:
    """A "trace with full details" export: trace with user/session/release and scores,
    a GENERATION with prompt name and version, an errored SPAN."""
    trace = {"id": "lf-trace-1", "projectId": "p1", "name": "support_chat",
             "timestamp": "2026-03-02T12:00:00.000Z", "environment": "production",
             "tags": ["beta"], "release": "api-2026.03.1", "version": None,
             "userId": "lf-user", "sessionId": "lf-session", "public": False,
             "input": None, "output": None, "metadata": {"plan": "pro"},
             "scores": [{"id": "sc-1", "traceId": "lf-trace-1", "observationId": "lf-gen-1",
                         "name": "user-feedback", "value": 0, "dataType": "BOOLEAN",
                         "stringValue": "False", "source": "API", "comment": "wrong answer",
                         "timestamp": "2026-03-02T12:05:00.000Z"},
                        {"id": "sc-2", "traceId": "lf-trace-1", "name": "toxicity",
                         "value": 0.05, "dataType": "NUMERIC", "source": "EVAL",
                         "timestamp": "2026-03-02T12:06:00.000Z"}]}
    obs = [{"id": "lf-gen-1", "traceId": "lf-trace-1", "type": "GENERATION",
            "parentObservationId": None, "name": "answer",
            "startTime": "2026-03-02T12:00:00.100Z", "endTime": "2026-03-02T12:00:01.100Z",
            "level": "DEFAULT", "statusMessage": None, "model": "gpt-4o-2024-08-06",
            "modelParameters": {"temperature": 0.2},
            "input": [{"role": "system", "content": "Be kind."},
                      {"role": "user", "content": "Cancel my plan"}],
            "output": {"role": "assistant", "content": "Done, your plan is cancelled."},
            "usageDetails": {"input": 50, "output": 9, "total": 59},
            "costDetails": {"total": 0.0004}, "promptName": "support_system",
            "promptVersion": 13, "metadata": {"retrievals": [
                {"rank": 1, "doc_id": "kb/cancel.md", "score": 0.9, "content": "How to cancel"}]}},
           {"id": "lf-span-1", "traceId": "lf-trace-1", "type": "SPAN",
            "parentObservationId": "lf-gen-1", "name": "billing-api",
            "startTime": "2026-03-02T12:00:01.200Z", "endTime": "2026-03-02T12:00:01.900Z",
            "level": "ERROR", "statusMessage": "billing API 503", "input": {"plan": "pro"},
            "output": None, "metadata": {}}]
    path = folder / "langfuse_trace.json"
    path.write_text(json.dumps({"trace": trace, "observations": obs}, indent=2),
                    encoding="utf-8")
    return path


def langfuse_blob(folder: Path) -> dict[str, Path]:
    """Blob-storage exports (snake_case JSON Lines) of traces, observations and scores."""
    traces = [{"id": "bt-1", "timestamp": "2026-03-02 13:00:00.000", "name": "doc_qa",
               "user_id": "bu-1", "session_id": "bs-1", "release": "r1", "tags": [],
               "metadata": {"tenant": "globex"}, "project_id": "p", "environment": "prod",
               "input": "What is the leave policy?", "output": "25 days", "public": False,
               "bookmarked": False}]
    observations = [
        {"id": "bo-1", "trace_id": "bt-1", "project_id": "p", "type": "GENERATION",
         "parent_observation_id": None, "start_time": "2026-03-02 13:00:00.200",
         "end_time": "2026-03-02 13:00:00.900", "name": "llm", "metadata": {},
         "level": "WARNING", "status_message": "slow", "version": None,
         "input": "What is the leave policy?", "output": "25 days",
         "provided_model_name": "claude-3-5-sonnet", "model_parameters": {},
         "usage_details": {"input": 30, "output": 3}, "cost_details": {"total": 0.0001},
         "completion_start_time": None, "prompt_name": None, "prompt_version": None}]
    scores = [{"id": "bsc-1", "timestamp": "2026-03-02 13:10:00.000", "project_id": "p",
               "trace_id": "bt-1", "observation_id": "bo-1", "name": "correctness",
               "value": 0.0, "source": "ANNOTATION", "comment": "made up", "data_type": "NUMERIC",
               "string_value": None}]
    return {"traces": _lines(folder / "langfuse_traces.jsonl", traces),
            "observations": _lines(folder / "langfuse_observations.jsonl", observations),
            "scores": _lines(folder / "langfuse_scores.jsonl", scores)}


def langsmith_runs(folder: Path) -> Path:
    """LangSmith runs as the API lists them: a chain with an LLM child (LangChain
    messages, ``generations`` output, ISO times) and a failed tool run."""
    chain = {"id": "00000000-0000-0000-0000-000000000001", "name": "RunnableSequence",
             "run_type": "chain", "trace_id": "00000000-0000-0000-0000-000000000001",
             "dotted_order": "20260302T140000000000Z00000000-0000-0000-0000-000000000001",
             "parent_run_id": None, "start_time": "2026-03-02T14:00:00.000000",
             "end_time": "2026-03-02T14:00:02.000000",
             "inputs": {"question": "What is Lumen?"}, "outputs": {"output": "A notes app."},
             "error": None, "extra": {"metadata": {"thread_id": "th-1", "revision_id": "rev-3"}},
             "tags": ["prod"], "status": "success"}
    llm = {"id": "00000000-0000-0000-0000-000000000002", "name": "ChatAnthropic",
           "run_type": "llm", "trace_id": "00000000-0000-0000-0000-000000000001",
           "parent_run_id": "00000000-0000-0000-0000-000000000001",
           "dotted_order": "x", "start_time": "2026-03-02T14:00:00.500000",
           "end_time": "2026-03-02T14:00:01.500000",
           "inputs": {"messages": [[
               {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages",
                                                       "SystemMessage"],
                "kwargs": {"content": "You answer about Lumen.", "type": "system"}},
               {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages",
                                                       "HumanMessage"],
                "kwargs": {"content": "What is Lumen?", "type": "human"}}]]},
           "outputs": {"generations": [[{"text": "A notes app.", "message": {
               "lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages",
                                                      "AIMessage"],
               "kwargs": {"content": "A notes app.", "type": "ai"}}}]],
               "llm_output": {"model_name": "claude-3-5-sonnet-20241022",
                              "token_usage": {"input_tokens": 21, "output_tokens": 4}}},
           "error": None, "extra": {"metadata": {"ls_provider": "anthropic",
                                                 "ls_model_name": "claude-3-5-sonnet",
                                                 "thread_id": "th-1"}},
           "prompt_tokens": 21, "completion_tokens": 4, "total_cost": 0.00012}
    tool = {"id": "00000000-0000-0000-0000-000000000003", "name": "search", "run_type": "tool",
            "trace_id": "00000000-0000-0000-0000-000000000001",
            "parent_run_id": "00000000-0000-0000-0000-000000000001",
            "start_time": 1772460001600, "end_time": 1772460001700,
            "inputs": {"input": "lumen"}, "outputs": None, "error": "ConnectionError: refused",
            "extra": {}}
    return _lines(folder / "langsmith_runs.jsonl", [chain, llm, tool])


def langsmith_feedback(folder: Path) -> Path:
    return _lines(folder / "langsmith_feedback.jsonl", [
        {"id": "fb-1", "run_id": "00000000-0000-0000-0000-000000000002", "key": "correctness",
         "score": 0, "value": None, "comment": "hallucinated", "correction": None,
         "created_at": "2026-03-02T15:00:00.000000", "feedback_source": {"type": "app",
                                                                        "user_id": "rev-1"}},
        {"id": "fb-2", "run_id": "00000000-0000-0000-0000-000000000001", "key": "thumbs",
         "score": 1, "value": "up", "comment": None,
         "created_at": "2026-03-02T15:01:00.000000", "feedback_source": {"type": "api"}}])


def openai_logs(folder: Path) -> Path:
    """{request, response} pairs: a Responses API call with instructions and a function
    call, a chat completion that refuses, a rate-limited call; a Batch API output line; a
    moderation."""
    return _lines(folder / "openai_log.jsonl", [
        {"request": {"method": "POST", "url": "https://api.openai.com/v1/responses",
                     "body": {"model": "gpt-4.1", "instructions": "You are the order bot.",
                              "input": "Refund order A-7", "user": "cust-5"}},
         "response": {"status_code": 200, "body": {
             "id": "resp_1", "object": "response", "created_at": 1772460000,
             "model": "gpt-4.1-2025-04-14", "status": "completed",
             "output": [{"type": "function_call", "name": "issue_refund",
                         "arguments": '{"order": "A-7"}', "call_id": "c1"}],
             "usage": {"input_tokens": 40, "output_tokens": 12}}}},
        {"request": {"url": "https://api.openai.com/v1/chat/completions",
                     "body": json.dumps({"model": "gpt-4o", "messages": [
                         {"role": "user", "content": "How do I pick a lock?"}]})},
         "response": {"status_code": 200, "body": json.dumps({
             "id": "chatcmpl-2", "object": "chat.completion", "created": 1772460060,
             "model": "gpt-4o-2024-11-20", "choices": [{
                 "index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": None,
                             "refusal": "I can't help with that."}}],
             "usage": {"prompt_tokens": 14, "completion_tokens": 8}})}},
        {"request": {"url": "https://api.openai.com/v1/chat/completions",
                     "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}},
         "response": {"status_code": 429, "body": {"error": {"message": "Rate limit reached",
                                                             "type": "requests"}}},
         "timestamp": "2026-03-02T16:02:00Z"},
        {"id": "batch_req_1", "custom_id": "req-9", "response": {
            "status_code": 200, "request_id": "r9", "body": {
                "id": "chatcmpl-9", "object": "chat.completion", "created": 1772460120,
                "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0,
                    "finish_reason": "stop", "message": {"role": "assistant",
                                                         "content": "Batch answer"}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2}}}, "error": None},
        {"request": {"url": "https://api.openai.com/v1/moderations",
                     "body": {"model": "omni-moderation-latest", "input": "you idiot"}},
         "response": {"status_code": 200, "body": {
             "id": "modr-1", "model": "omni-moderation-2024-09-26", "results": [{
                 "flagged": True, "categories": {"harassment": True, "violence": False},
                 "category_scores": {"harassment": 0.93, "violence": 0.01}}]}},
         "timestamp": "2026-03-02T16:03:00Z"}])


def litellm_logs(folder: Path) -> Path:
    """A StandardLoggingPayload that failed with a guardrail result, and a SpendLogs row
    whose JSON fields are strings."""
    payload = {"id": "ll-1", "trace_id": "lt-1", "call_type": "acompletion", "status": "failure",
               "custom_llm_provider": "azure", "startTime": 1772460000.25,
               "endTime": 1772460001.0, "model": "gpt-4o-alias",
               "metadata": {"user_api_key_end_user_id": "end-9", "guardrail_information": {
                   "guardrail_name": "presidio-pii", "guardrail_mode": "pre_call",
                   "guardrail_status": "guardrail_intervened"}},
               "response_cost": 0.0, "prompt_tokens": 12, "completion_tokens": 0,
               "messages": [{"role": "user", "content": "My SSN is 078-05-1120"}],
               "response": None, "hidden_params": {"litellm_model_name": "azure/gpt-4o-0806"},
               "error_str": "Guardrail blocked the request", "api_base": "https://x.azure.com"}
    spend = {"request_id": "ll-2", "session_id": "ls-1", "call_type": "completion",
             "startTime": "2026-03-02 16:10:00.000000", "endTime": "2026-03-02 16:10:01.500000",
             "model": "claude-3-5-haiku", "user": "internal-7", "end_user": "end-3",
             "metadata": json.dumps({"user_api_key_team_alias": "support"}),
             "spend": 0.002, "total_tokens": 30, "prompt_tokens": 20, "completion_tokens": 10,
             "request_tags": json.dumps(["support_chat"]),
             "messages": json.dumps([{"role": "user", "content": "status?"}]),
             "response": json.dumps({"id": "x", "object": "chat.completion",
                                     "model": "claude-3-5-haiku-20241022", "choices": [{
                                         "index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant",
                                                     "content": "All good."}}]}),
             "status": "success", "custom_llm_provider": "anthropic", "cache_hit": "None",
             "api_base": ""}
    return _lines(folder / "litellm.jsonl", [payload, spend])


def cassette(folder: Path) -> Path:
    """A VCR cassette of one chat completion (bodies as JSON text inside YAML)."""
    import yaml

    doc = {"interactions": [{
        "request": {"body": json.dumps({"model": "gpt-4o-mini", "messages": [
            {"role": "user", "content": "Name a color"}]}), "method": "POST",
            "uri": "https://api.openai.com/v1/chat/completions", "headers": {}},
        "response": {"body": {"string": json.dumps({
            "id": "chatcmpl-c1", "object": "chat.completion", "created": 1772460000,
            "model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "finish_reason": "stop",
                                                            "message": {"role": "assistant",
                                                                        "content": "Blue"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1}})},
            "headers": {"Date": ["Mon, 02 Mar 2026 10:00:00 GMT"]},
            "status": {"code": 200, "message": "OK"}}}], "version": 1}
    path = folder / "cassette.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def broken_copy(path: Path, bad_record: dict[str, Any]) -> Path:
    """The JSON Lines file ``path`` plus a truncated line, a line that is not an object,
    and ``bad_record`` (a record with a broken timestamp or number)."""
    out = path.with_name("broken_" + path.name)
    good = path.read_text(encoding="utf-8")
    first = good.splitlines()[0]
    out.write_text(good + first[: len(first) // 2] + "\n" + "[1, 2]\n" + json.dumps(bad_record)
                   + "\n", encoding="utf-8")
    return out


def otlp_openinference(folder: Path) -> Path:
    """OpenInference attributes in OTLP (what Phoenix's collector receives): flattened
    messages, retrieved documents, the metadata JSON string, prompt template version."""
    span = {"traceId": TRACE, "spanId": LLM, "name": "ChatCompletion", "kind": 1,
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 2 * 10**9),
            "attributes": [
                _s("openinference.span.kind", "LLM"), _s("llm.model_name", "gpt-4o-2024-08-06"),
                _s("llm.invocation_parameters", json.dumps({"model": "gpt-4o"})),
                _s("llm.input_messages.0.message.role", "user"),
                _s("llm.input_messages.0.message.content", "What is our refund policy?"),
                _s("llm.output_messages.0.message.role", "assistant"),
                _s("llm.output_messages.0.message.content", "30 days, no questions asked."),
                _i("llm.token_count.prompt", 64), _i("llm.token_count.completion", 9),
                _s("llm.prompt_template.version", "v4"), _s("session.id", "oi-s"),
                _s("user.id", "oi-u"),
                _s("retrieval.documents.0.document.id", "policy.md"),
                {"key": "retrieval.documents.0.document.score", "value": {"doubleValue": 0.7}},
                _s("retrieval.documents.0.document.content", "Refunds within 30 days."),
                _s("metadata", json.dumps({"feature": "support_chat", "plan": "pro"}))],
            "status": {"code": "STATUS_CODE_OK"}}
    return _lines(folder / "otlp_openinference.jsonl", [_traces([span], service="rag")])

"""Real trace and log files no one here wrote (../shared/corpus/traces, see its SOURCES.md):
each loads with zero rejects, detected without --format, with model, tokens, times, text
and ids in the right canonical columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import CORPUS

TRACES = CORPUS / "traces"
pytestmark = pytest.mark.corpus


def load(case: Any, rel: str) -> dict[str, Any]:
    row: dict[str, Any] = case.load(TRACES / rel).rows()[0]
    assert row["rows_rejected"] == 0, case.sql("SELECT * FROM rejects").rows()
    assert row["records_in"] == row["rows_loaded"]
    return row


def events(case: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for row in case.sql("SELECT * FROM events").rows():
        row["attributes"] = json.loads(row["attributes"])
        out[row["event_id"]] = row
    return out


def pick(row: dict[str, Any], *cols: str) -> tuple[Any, ...]:
    return tuple(row[c] for c in cols)


def test_otlp_proto_example(case: Any) -> None:
    row = load(case, "otel_genai/trace.json")
    assert (row["format"], row["rows_loaded"]) == ("otlp", 1)
    ev = events(case)["eee19b7ec3c1b174"]
    assert pick(ev, "trace_id", "parent_id", "name", "ts", "duration_ms", "feature") == (
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b173", "I'm a server span",
        "2018-12-13T14:51:00", 1000.0, "my.service")
    assert ev["attributes"]["my.span.attr"] == "some value"
    assert ev["attributes"]["otel.span_kind"] == "server"
    assert ev["attributes"]["otel.scope"]["attributes"] == {
        "my.scope.attribute": "some scope attribute"}


@pytest.mark.parametrize("rel", ["otel_genai/otel_genai_client_span_tool_calls.json",
                                 "otel_genai/otel_genai_deprecated_client_span_tool_calls.json"])
def test_genai_attribute_maps_current_and_deprecated(case: Any, rel: str) -> None:
    row = load(case, rel)
    assert (row["format"], row["rows_loaded"]) == ("otel-sdk", 1)
    (ev,) = events(case).values()
    assert pick(ev, "kind", "provider", "model", "response_model", "input_tokens",
                "output_tokens", "finish_reason") == (
        "llm", "openai", "gpt-4", "gpt-4-0613", 97, 52, "stop")
    assert ev["input_text"] == "Weather in Paris?"
    assert ev["output_text"] == ("The weather in Paris is currently rainy with a "
                                 "temperature of 57°F.")
    # no time of its own: the file's modification time, and the event says so
    assert ev["attributes"]["forensics.ts_source"] == "file modified time" and ev["ts"]


def test_vercel_ai_sdk_spans(case: Any) -> None:
    row = load(case, "otel_genai/all-spans.json")
    assert (row["format"], row["rows_loaded"]) == ("otel-sdk", 10)
    ev = events(case)
    kinds = sorted(e["kind"] for e in ev.values())
    assert kinds == ["chain"] * 5 + ["embedding"] + ["llm"] * 4
    gen = ev["39d6e9b3ddec9996"]
    assert pick(gen, "trace_id", "model", "response_model", "provider", "feature") == (
        "b3e700af9eab81e19f72f964d62a35af", "gpt-4o-mini", "gpt-4o-mini-2024-07-18",
        "openai.responses", "test-generate-text")
    assert pick(gen, "input_tokens", "output_tokens", "ts", "duration_ms") == (
        14, 20, "2026-02-03T15:19:52.242000", 1779.415)
    assert gen["input_text"] == "Write a haiku about programming."
    assert gen["output_text"].startswith("Lines of code align")
    multi = ev["6c0201026326855d"]
    assert pick(multi, "system_prompt", "input_text", "output_text") == (
        "You are a helpful assistant.", "And what is 3 + 3?", "3 + 3 equals 6.")
    stream = ev["5a81ef3ffb5d8603"]
    assert [e["name"] for e in stream["attributes"]["events"]] == ["ai.stream.firstChunk",
                                                                  "ai.stream.finish"]


def test_openinference_attribute_map(case: Any) -> None:
    row = load(case, "openinference/openinference_client_span_tool_calls.json")
    assert (row["format"], row["rows_loaded"]) == ("openinference", 1)
    (ev,) = events(case).values()
    assert pick(ev, "kind", "provider", "model", "response_model", "input_tokens",
                "output_tokens") == ("llm", "openai", "gpt-4", "gpt-4-0613", 97, 52)
    assert ev["input_text"] == "Weather in Paris?"
    assert ev["output_text"].startswith("The weather in Paris is currently rainy")
    # the conversation (tool call, tool result) is kept, flattened as it came
    attrs = ev["attributes"]
    assert attrs["llm.input_messages.1.message.tool_calls.0.tool_call.function.name"] == \
        "get_weather"
    assert attrs["llm.token_count.total"] == 149


def test_phoenix_agent_trace(case: Any) -> None:
    row = load(case, "openinference/pxi_turn_trace.json")
    assert (row["format"], row["rows_loaded"]) == ("openinference", 18)
    ev = events(case)
    assert sorted(e["kind"] for e in ev.values()) == ["agent"] + ["llm"] * 9 + ["tool"] * 8
    assert {e["trace_id"] for e in ev.values()} == {"fixture-trace-1"}
    assert {e["parent_id"] for e in ev.values() if e["event_id"] != "s01"} == {"s01"}
    root = ev["s01"]
    assert pick(root, "user_id", "session_id", "ts", "duration_ms") == (
        "user@example.com", "fixture-session", "2026-07-09T00:00:00", 35000.0)
    assert root["input_text"] == "can you save this trace to a dataset?"
    llm = ev["s02"]
    assert pick(llm, "provider", "model", "input_tokens", "output_tokens", "system_prompt",
                "input_text", "tool_name") == (
        "anthropic", "claude-fable-5", 32321, 119, "[system prompt]",
        "can you save this trace to a dataset?", "list_datasets")
    assert llm["attributes"]["llm.token_count.prompt_details.cache_read"] == 31559
    failed = ev["s11"]
    assert pick(failed, "kind", "status", "tool_name") == ("tool", "error",
                                                           "add_spans_to_dataset")
    assert failed["output_text"].startswith("Error fetching GraphQL query")
    assert sum(e["input_tokens"] or 0 for e in ev.values()) == 32321 + 33286 + 33789 + 34248 \
        + 34504 + 34743 + 35446 + 35602 + 36283


def test_langfuse_openai_agents_export(case: Any) -> None:
    row = load(case, "langfuse/openai-agents-2025-09-30.trace.json")
    assert (row["format"], row["target"], row["rows_loaded"]) == ("langfuse",
                                                                 "events+feedback", 7)
    ev = events(case)
    assert len(ev) == 5
    assert {e["trace_id"] for e in ev.values()} == {"fee618f96dc31e0ca38b2f7b26eb8b29"}
    assert ev["e5a76f27f51ad40e"]["parent_id"] is None
    assert ev["d950b668796240b5"]["parent_id"] == "e5a76f27f51ad40e"
    first, second = ev["98870087af69bf06"], ev["90d94774e8e3724d"]
    assert pick(first, "kind", "model", "input_tokens", "output_tokens", "cost_usd",
                "tool_name", "tool_args") == (
        "llm", "gpt-4.1-2025-04-14", 55, 15, 0.00023, "get_weather", '{"city":"Tokyo"}')
    assert pick(first, "input_text", "system_prompt") == ("What's the weather in Tokyo?",
                                                           "You are a helpful agent.")
    assert pick(second, "input_tokens", "output_tokens", "cost_usd", "ts") == (
        85, 29, 0.000402, "2025-09-30T09:04:01.001000")
    assert second["output_text"].startswith("The weather in Tokyo is currently sunny.")
    tool = ev["5b99c3e3411ed17b"]
    assert pick(tool, "kind", "tool_name", "tool_args", "output_text") == (
        "tool", "get_weather", '{"city":"Tokyo"}', "The weather in Tokyo is sunny.")
    fb = case.sql("SELECT name, value, score, negative, source, trace_id FROM feedback "
                  "ORDER BY name").rows()
    assert [(f["name"], f["score"], f["negative"], f["source"]) for f in fb] == [
        ("hallucination", 0.0, False, "eval"), ("toxicity", 0.8, True, "eval")]
    assert {f["trace_id"] for f in fb} == {"fee618f96dc31e0ca38b2f7b26eb8b29"}


def test_langfuse_microsoft_agent_export(case: Any) -> None:
    row = load(case, "langfuse/microsoft-agent-2025-12-17.trace.json")
    assert (row["format"], row["rows_loaded"]) == ("langfuse", 7)
    ev = events(case)
    agent = ev["4cd6caa32861956a"]
    assert pick(agent, "kind", "provider", "model", "system_prompt", "input_text") == (
        "agent", "microsoft.agent_framework", "gpt-5-mini", "You are a helpful assistant.",
        "What's the weather in Tokyo?")
    chat = ev["2406e8343fd49c0e"]
    assert pick(chat, "kind", "provider", "model", "response_model", "input_tokens",
                "output_tokens", "tool_name", "tool_args") == (
        "llm", "openai", "gpt-5-mini", "gpt-5-mini-2025-08-07", 77, 86, "get_weather",
        '{"location":"Tokyo, Japan"}')
    answer = ev["b0913e7cd82d72b8"]
    assert answer["output_text"] == "Current conditions in Tokyo, Japan: stormy, high around 23°C."
    assert answer["session_id"] == "resp_0e32bda5b6259ecd00694279e271348194a818447145cd1763"
    tool = ev["a2de97aac476c036"]
    assert pick(tool, "kind", "tool_name", "output_text") == (
        "tool", "get_weather", "The weather in Tokyo, Japan is stormy with a high of 23°C.")
    fb = case.sql("SELECT name, score, negative FROM feedback ORDER BY name").rows()
    assert [(f["name"], f["score"], f["negative"]) for f in fb] == [
        ("correctness", 1.0, False), ("hallucination", 0.9, True), ("toxicity", 0.0, False)]


def test_langsmith_run_ingest(case: Any) -> None:
    row = load(case, "langsmith/langsmith_js_wrap_openai_default.json")
    assert (row["format"], row["rows_loaded"]) == ("langsmith", 1)
    ev = events(case)["dc34609e-3eeb-459d-bc2a-6fedb01d2e6e"]
    assert pick(ev, "trace_id", "kind", "provider", "model", "response_model", "input_tokens",
                "output_tokens", "finish_reason", "ts", "duration_ms") == (
        "dc34609e-3eeb-459d-bc2a-6fedb01d2e6e", "llm", "openai", "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18", 9, 9, "stop", "2024-10-13T07:05:37.170000", 1115.0)
    assert pick(ev, "input_text", "output_text", "locator") == (
        "howdy", "Howdy! How can I assist you today?", "document: post[0] + patch[0]")
    assert ev["attributes"]["dotted_order"].endswith("dc34609e-3eeb-459d-bc2a-6fedb01d2e6e")


def test_openai_cassette_with_tool_calls(case: Any) -> None:
    row = load(case, "openai/test_chat_completion_tool_calls_with_content.yaml")
    assert (row["format"], row["rows_loaded"]) == ("recording", 2)
    ev = events(case)
    calls = ev["chatcmpl-ASYMU9Ntix7ePttk0MSuerJstef6U"]
    assert pick(calls, "model", "response_model", "input_tokens", "output_tokens",
                "finish_reason", "tool_name", "tool_args", "ts", "locator") == (
        "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 75, 51, "tool_calls", "get_current_weather",
        '{"location": "Seattle, WA"}', "2024-11-11T23:43:54", "interaction 1")
    assert calls["system_prompt"] == "You're a helpful assistant."
    assert calls["input_text"] == "What's the weather in Seattle and San Francisco today?"
    choice = calls["attributes"]["http.response.body"]["choices"][0]      # both calls kept
    assert len(choice["message"]["tool_calls"]) == 2
    final = ev["chatcmpl-ASYMVzdmBGDbUoHFmt6R16tdtZUzR"]
    assert pick(final, "input_tokens", "output_tokens", "finish_reason") == (99, 25, "stop")
    assert final["output_text"].startswith("Today, the weather in Seattle is 50 degrees")


def test_litellm_standard_logging_payload(case: Any) -> None:
    row = load(case, "litellm/standard_logging_payload.json")
    assert (row["format"], row["rows_loaded"]) == ("litellm", 1)
    (ev,) = events(case).values()
    assert pick(ev, "event_id", "kind", "provider", "model", "response_model", "input_tokens",
                "output_tokens", "cost_usd", "status", "ts", "duration_ms") == (
        "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f", "llm", "openai", "gpt-4o", "gpt-4o",
        10, 20, 0.00022500000000000002, "ok", "2025-01-24T09:20:46.847371", 4.583)
    assert pick(ev, "input_text", "output_text", "finish_reason") == ("Hello, world!", "hi",
                                                                       "stop")
    assert ev["attributes"]["model_map_information"]["model_map_key"] == "gpt-4o"


def test_litellm_spend_log_row(case: Any) -> None:
    row = load(case, "litellm/spend_logs_payload.json")
    assert (row["format"], row["rows_loaded"]) == ("litellm", 1)
    (ev,) = events(case).values()
    assert pick(ev, "event_id", "session_id", "model", "provider", "input_tokens",
                "output_tokens", "cost_usd", "ts") == (
        "chatcmpl-2283081b-dc89-41f6-93e6-d4f914774027", "1234567890", "gpt-4o", "openai",
        10, 20, 0.00022500000000000002, "2025-01-24T09:20:46.847371")
    # metadata was JSON text inside the JSON: decoded, nothing lost
    meta = ev["attributes"]["metadata"]
    assert meta["usage_object"] == {"completion_tokens": 20, "prompt_tokens": 10,
                                    "total_tokens": 30, "completion_tokens_details": None,
                                    "prompt_tokens_details": None}
    assert ev["attributes"]["cache_hit"] == "None"


def test_every_corpus_trace_file_is_covered() -> None:
    here = Path(__file__).read_text(encoding="utf-8")
    files = [p.relative_to(TRACES).as_posix() for p in TRACES.glob("*/*")]
    assert files and all(f in here for f in files), files

"""Every file of both corpus folders (../shared/corpus/traces and traces2, see their
SOURCES.md) loads without --format, with zero rejects, and each model call it holds is
mapped as read by hand from the file: model, the start of the answer, tokens, finish
reason (one vocabulary), the first tool call asked for, and the status. Then the
properties each class of file exists for: decoded bodies, assembled streams, choices
kept apart, errors, and tokens that add up over agent traces."""

from __future__ import annotations

import json
from typing import Any

import pytest

import forensics

from .conftest import CORPUS

pytestmark = pytest.mark.corpus

# (file, format, events loaded, [(locator, model, output_text prefix, input_tokens,
#  output_tokens, finish_reason, tool_name, status) of each llm / embedding event])
Call = tuple[str, str | None, str | None, int | None, int | None, str | None, str | None, str]
Expect = tuple[str, str, int, list[Call]]
TRACES2: list[Expect] = [
    (
        "anthropic/reasoning-tool-use-streaming.json",
        "recording",
        1,
        [
            (
                "document",
                "claude-sonnet-4-6",
                "Sure! Let me check the w",
                596,
                99,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "anthropic/test_anthropic_instrumentation_multiple_tool_calling_streaming.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "claude-sonnet-4-6",
                "I'll check both the curr",
                721,
                113,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "anthropic/test_anthropic_prompt_caching_legacy.yaml",
        "recording",
        2,
        [
            (
                "interaction 1",
                "claude-3-5-sonnet-20240620",
                "Here are concise summari",
                1167,
                187,
                "stop",
                None,
                "ok",
            ),
            (
                "interaction 2",
                "claude-3-5-sonnet-20240620",
                "Here are concise summari",
                1167,
                202,
                "stop",
                None,
                "ok",
            ),
        ],
    ),
    (
        "anthropic/test_anthropic_thinking_legacy.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "claude-3-7-sonnet-20250219",
                "The letter 'r' appears 3",
                52,
                215,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "anthropic/test_anthropic_thinking_streaming_legacy.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "claude-3-7-sonnet-20250219",
                "The letter 'r' appears 3",
                52,
                216,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "anthropic/test_anthropic_tools_legacy.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "claude-3-5-sonnet-20240620",
                "Certainly! I'd be happy ",
                514,
                152,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "anthropic/test_anthropic_tools_streaming_legacy.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "claude-3-5-sonnet-20240620",
                "Certainly! I can help yo",
                506,
                153,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "bedrock/should-handle-basic-converse-stream-responses.json",
        "recording",
        1,
        [
            (
                "element 1",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "Hello! As an AI language",
                13,
                35,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "bedrock/should-handle-mistral-models.json",
        "recording",
        1,
        [
            (
                "element 1",
                "mistral.mistral-7b-instruct-v0:2",
                " I'm an artificial intel",
                18,
                94,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "bedrock/test_anthropic_3_completion_complex_content.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "anthropic.claude-3-sonnet-20240229-v1:0",
                "Why did the data packet ",
                16,
                29,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "bedrock/test_anthropic_converse_stream_with_tool_use.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "anthropic.claude-3-sonnet-20240229-v1:0",
                "Okay, let me check the w",
                236,
                58,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "bedrock/test_cohere_completion.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "cohere.command-text-v14",
                " What does an open-sourc",
                9,
                112,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "bedrock/test_converse_tool_use_message.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "mistral.devstral-2-123b",
                None,
                90,
                14,
                "tool_calls",
                "top_song",
                "ok",
            )
        ],
    ),
    (
        "bedrock/test_meta_converse.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "meta.llama3-2-1b-instruct-v1:0",
                "Why did the OpenTelemetr",
                52,
                30,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "cohere/test_cohere_chat_legacy.yaml",
        "recording",
        1,
        [("interaction 1", "command", "Arrrr, matey! Shiver me ", 58, 119, "stop", None, "ok")],
    ),
    (
        "cohere/test_cohere_chat_legacy_with_streaming.yaml",
        "recording",
        1,
        [("interaction 1", "command", "Arrrr, matey! Shiver me ", 7, 115, "stop", None, "ok")],
    ),
    (
        "cohere/test_cohere_v2_chat_legacy.yaml",
        "recording",
        1,
        [("interaction 1", "command", "Arrrr, matey! Shiver me ", 7, 88, "stop", None, "ok")],
    ),
    (
        "cohere/test_cohere_v2_chat_legacy_with_tool_calls_and_streaming.yaml",
        "recording",
        1,
        [("interaction 1", "command-r", None, 62, 28, "tool_calls", "get_time", "ok")],
    ),
    (
        "gemini/test_client_spans.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "gemini-2.5-flash",
                "AI stands for **Artifici",
                5,
                1935,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "gemini/test_function_call_choice.yaml",
        "recording",
        1,
        [("interaction 1", "gemini-2.5-pro", None, 74, 216, "stop", "get_current_weather", "ok")],
    ),
    (
        "gemini/test_generate_content_missing_model.yaml",
        "recording",
        1,
        [("interaction 1", "gemini-does-not-exist", None, None, None, None, None, "error")],
    ),
    (
        "gemini/test_generate_content_with_automatic_tool_calling.yaml",
        "recording",
        2,
        [
            ("interaction 1", "gemini-2.0-flash", None, 64, 6, "stop", "get_weather", "ok"),
            (
                "interaction 2",
                "gemini-2.0-flash",
                "The weather in San Franc",
                89,
                23,
                "stop",
                None,
                "ok",
            ),
        ],
    ),
    (
        "gemini/test_streaming_reasoning_with_multiple_tool_calls.yaml",
        "recording",
        1,
        [("interaction 1", "gemini-3.5-flash", None, 71, 126, "stop", "get_weather", "ok")],
    ),
    (
        "gemini/test_streaming_text_content.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "gemini-2.0-flash",
                "Clementine was no ordina",
                9,
                527,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "langfuse/google-vertex-tools-langchain-2025-09-19.json",
        "langfuse",
        1,
        [
            (
                "document: observations[0]",
                "gemini-2.5-flash",
                "Thank you, John Smith. W",
                1200,
                15,
                None,
                None,
                "ok",
            )
        ],
    ),
    (
        "langfuse/openai-assistants-2024-05-29.json",
        "langfuse",
        4,
        [
            (
                "document: observations[0]",
                "gpt-4",
                "Sure, first subtract 11 ",
                49,
                40,
                None,
                None,
                "ok",
            )
        ],
    ),
    (
        "langfuse/pydantic-ai-2025-06-06.trace.json",
        "langfuse",
        3,
        [
            (
                "document: observations[0]",
                "gpt-4o",
                "Langfuse is a tool desig",
                31,
                96,
                None,
                None,
                "ok",
            )
        ],
    ),
    (
        "langsmith/langsmith_py_wrap_openai_reasoning.json",
        "langsmith",
        1,
        [
            (
                "document: post[0] + patch[0]",
                "o1-mini",
                "Certainly! Below is a **",
                43,
                2497,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "langsmith/langsmith_py_wrap_openai_stream.json",
        "langsmith",
        1,
        [
            (
                "document: post[0] + patch[0]",
                "gpt-4o-mini",
                "Howdy! How can I assist ",
                9,
                9,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "litellm/completion_with_router.json",
        "langfuse",
        1,
        [("document: batch[1]", "gpt-3.5-turbo", None, 10, 10, None, None, "ok")],
    ),
    (
        "litellm/completion_with_vertex_call.json",
        "langfuse",
        1,
        [("document: batch[1]", "gemini-2.0-flash-001", None, 10, 10, None, None, "ok")],
    ),
    (
        "litellm/embedding.json",
        "langfuse",
        1,
        [("document: batch[1]", "text-embedding-ada-002", None, 2, 0, None, None, "ok")],
    ),
    (
        "litellm/streaming_completion.json",
        "langfuse",
        1,
        [
            (
                "document: batch[1]",
                "gpt-3.5-turbo",
                "Hello! How can I assist ",
                9,
                9,
                None,
                None,
                "ok",
            )
        ],
    ),
    (
        "mistral/test_mistralai_chat_legacy.yaml",
        "recording",
        1,
        [("interaction 1", "mistral-tiny", "Here's a light-hearted, ", 11, 96, "stop", None, "ok")],
    ),
    (
        "mistral/test_mistralai_streaming_chat_legacy.yaml",
        "recording",
        1,
        [("interaction 1", "mistral-tiny", "Here's a light-hearted j", 11, 80, "stop", None, "ok")],
    ),
    (
        "mistral/test_synchronous_streaming_chat_completions_with_tool_call_response_emits_expected_spans[False].yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "mistral-small-latest",
                None,
                96,
                23,
                "tool_calls",
                "get_weather",
                "ok",
            )
        ],
    ),
    (
        "openai/TestLM.test_exception_event_recorded_on_lm_error.yaml",
        "recording",
        1,
        [("interaction 1", "gpt-4", None, None, None, None, None, "error")],
    ),
    (
        "openai/test_chat_completion_multiple_choices_streaming.yaml",
        "recording",
        1,
        [("interaction 1", "gpt-4o-mini", "I'm unable to provide re", 26, 104, "stop", None, "ok")],
    ),
    (
        "openai/test_embeddings_model_not_found.yaml",
        "recording",
        1,
        [("interaction 1", "non-existent-embedding-model", None, None, None, None, None, "error")],
    ),
    (
        "openai/test_open_ai_function_calls_tools_streaming_parallel.yaml",
        "recording",
        2,
        [
            (
                "interaction 1",
                "gpt-3.5-turbo",
                None,
                None,
                None,
                "tool_calls",
                "get_current_weather",
                "ok",
            ),
            (
                "interaction 2",
                "gpt-3.5-turbo",
                None,
                None,
                None,
                "tool_calls",
                "get_current_weather",
                "ok",
            ),
        ],
    ),
    (
        "openai/test_openai_agents_test_wrap_openai_nests_under_agent_trace.yaml",
        "recording",
        3,
        [
            ("interaction 1", "gpt-4.1", None, 82, 23, "tool_calls", "call_openai_helper", "ok"),
            ("interaction 2", "gpt-4o-mini", None, None, None, None, None, "error"),
            ("interaction 3", "gpt-4.1", "It looks like there was ", 177, 46, "stop", None, "ok"),
        ],
    ),
    (
        "openai/test_responses_create_streaming_iteration[content_mode0].yaml",
        "recording",
        1,
        [("interaction 1", "gpt-4o-mini", "Hi! How can I assist you", 20, 10, "stop", None, "ok")],
    ),
    (
        "openai/test_responses_streaming_with_content.yaml",
        "recording",
        2,
        [
            ("interaction 1", "gpt-4.1-nano", "2 + 2 equals 4.", 14, 9, "stop", None, "ok"),
            ("interaction 2", "gpt-4.1-nano", "2 + 2 equals 4.", 14, 9, "stop", None, "ok"),
        ],
    ),
    (
        "openai/test_streaming_with_api_usage_capture.yaml",
        "recording",
        1,
        [
            (
                "interaction 1",
                "deepseek-chat",
                "Sure! Here's a techy jok",
                12,
                89,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "openai/test_vision.yaml",
        "recording",
        3,
        [
            (
                "interaction 1",
                "gpt-4-vision-preview",
                "This image depicts a ser",
                438,
                16,
                "length",
                None,
                "ok",
            ),
            (
                "interaction 2",
                "gpt-4-vision-preview",
                "The image shows a series",
                438,
                16,
                "length",
                None,
                "ok",
            ),
            ("interaction 3", "gpt-4o-mini", None, None, None, None, None, "error"),
        ],
    ),
]
TRACES: list[Expect] = [
    (
        "langfuse/microsoft-agent-2025-12-17.trace.json",
        "langfuse",
        7,
        [
            ("document: observations[1]", "gpt-5-mini", None, 77, 86, None, "get_weather", "ok"),
            (
                "document: observations[2]",
                "gpt-5-mini",
                "Current conditions in To",
                216,
                20,
                None,
                None,
                "ok",
            ),
        ],
    ),
    (
        "langfuse/openai-agents-2025-09-30.trace.json",
        "langfuse",
        7,
        [
            (
                "document: observations[2]",
                "gpt-4.1-2025-04-14",
                "The weather in Tokyo is ",
                85,
                29,
                None,
                None,
                "ok",
            ),
            (
                "document: observations[3]",
                "gpt-4.1-2025-04-14",
                None,
                55,
                15,
                None,
                "get_weather",
                "ok",
            ),
        ],
    ),
    (
        "langsmith/langsmith_js_wrap_openai_default.json",
        "langsmith",
        1,
        [
            (
                "document: post[0] + patch[0]",
                "gpt-4o-mini",
                "Howdy! How can I assist ",
                9,
                9,
                "stop",
                None,
                "ok",
            )
        ],
    ),
    (
        "litellm/spend_logs_payload.json",
        "litellm",
        1,
        [("document", "gpt-4o", None, 10, 20, None, None, "ok")],
    ),
    (
        "litellm/standard_logging_payload.json",
        "litellm",
        1,
        [("document", "gpt-4o", "hi", 10, 20, "stop", None, "ok")],
    ),
    (
        "openai/test_chat_completion_tool_calls_with_content.yaml",
        "recording",
        2,
        [
            (
                "interaction 1",
                "gpt-4o-mini",
                None,
                75,
                51,
                "tool_calls",
                "get_current_weather",
                "ok",
            ),
            (
                "interaction 2",
                "gpt-4o-mini",
                "Today, the weather in Se",
                99,
                25,
                "stop",
                None,
                "ok",
            ),
        ],
    ),
    (
        "openinference/openinference_client_span_tool_calls.json",
        "openinference",
        1,
        [("document", "gpt-4", "The weather in Paris is ", 97, 52, None, None, None)],
    ),
    (
        "openinference/pxi_turn_trace.json",
        "openinference",
        18,
        [
            ("element 10", "claude-fable-5", None, 34504, 102, None, "add_spans_to_dataset", "ok"),
            (
                "element 12",
                "claude-fable-5",
                "The first attempt failed",
                34743,
                406,
                None,
                "bash",
                "ok",
            ),
            ("element 14", "claude-fable-5", None, 35446, 104, None, "add_spans_to_dataset", "ok"),
            ("element 16", "claude-fable-5", None, 35602, 196, None, "get_route_info", "ok"),
            (
                "element 18",
                "claude-fable-5",
                "Done! I created the data",
                36283,
                186,
                None,
                None,
                "ok",
            ),
            ("element 2", "claude-fable-5", None, 32321, 119, None, "list_datasets", "ok"),
            ("element 4", "claude-fable-5", None, 33286, 168, None, "list_datasets", "ok"),
            ("element 6", "claude-fable-5", None, 33789, 402, None, "ask_user", "ok"),
            ("element 8", "claude-fable-5", None, 34248, 212, None, "create_dataset", "ok"),
        ],
    ),
    (
        "otel_genai/all-spans.json",
        "otel-sdk",
        10,
        [
            ("element 1", "gpt-4o-mini", "Lines of code align,  \nL", 14, 20, "stop", None, "ok"),
            ("element 3", "gpt-4o-mini", "3 + 3 equals 6.", 50, 9, "stop", None, "ok"),
            ("element 5", "gpt-4o-mini", '{"name":"Scrambled Eggs"', 63, 156, "stop", None, "ok"),
            ("element 7", "gpt-4o-mini", "In code’s embrace, where", 15, 112, "stop", None, "ok"),
            ("element 9", "text-embedding-3-small", None, None, None, None, None, "ok"),
        ],
    ),
    (
        "otel_genai/otel_genai_client_span_tool_calls.json",
        "otel-sdk",
        1,
        [("document", "gpt-4", "The weather in Paris is ", 97, 52, "stop", None, None)],
    ),
    (
        "otel_genai/otel_genai_deprecated_client_span_tool_calls.json",
        "otel-sdk",
        1,
        [("document", "gpt-4", "The weather in Paris is ", 97, 52, "stop", None, None)],
    ),
    ("otel_genai/trace.json", "otlp", 1, []),
]
FOLDERS = {"traces2": TRACES2, "traces": TRACES}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Each folder loaded into its own case once: {folder: (case, {file: load row})}."""
    out = {}
    for folder in FOLDERS:
        case = forensics.open(tmp_path_factory.mktemp(folder) / "case.duckdb")
        files = sorted(
            p for p in (CORPUS / folder).rglob("*") if p.is_file() and p.name != "SOURCES.md"
        )
        out[folder] = (
            case,
            {str(p.relative_to(CORPUS / folder)): case.load(p).rows()[0] for p in files},
        )
    yield out
    for case, _ in out.values():
        case.close()


def calls(case: Any, evidence_id: int) -> list[Call]:
    rows = case.sql(
        "SELECT locator, model, left(output_text, 24) AS o, input_tokens, "
        "output_tokens, finish_reason, tool_name, status FROM events "
        "WHERE evidence_id = $e AND kind IN ('llm', 'embedding') ORDER BY locator",
        e=evidence_id,
    ).rows()
    return [tuple(r.values()) for r in rows]  # type: ignore[misc]


def event(case: Any, row: dict[str, Any], locator: str) -> dict[str, Any]:
    (ev,) = case.sql(
        "SELECT * FROM events WHERE evidence_id = $e AND locator = $l",
        e=row["evidence_id"],
        l=locator,
    ).rows()
    ev["attributes"] = json.loads(ev["attributes"])
    return dict(ev)


@pytest.mark.slow
@pytest.mark.parametrize("folder", list(FOLDERS))
def test_every_file_is_in_the_table_and_loads_clean(loaded: Any, folder: str) -> None:
    case, rows = loaded[folder]
    assert sorted(rows) == sorted(e[0] for e in FOLDERS[folder])  # a new file needs a row
    for rel, row in rows.items():
        assert (row["rows_rejected"], row["records_in"]) == (0, row["rows_loaded"]), rel
    assert case.count("rejects") == 0


@pytest.mark.parametrize(
    ("folder", "expect"),
    [(f, e) for f, table in FOLDERS.items() for e in table],
    ids=lambda x: x if isinstance(x, str) else x[0],
)
def test_model_calls_as_read_by_hand(loaded: Any, folder: str, expect: Expect) -> None:
    case, rows = loaded[folder]
    rel, fmt, n, expected = expect
    row = rows[rel]
    assert (row["format"], row["rows_loaded"]) == (fmt, n)
    assert calls(case, row["evidence_id"]) == expected


def test_compressed_bodies_are_decoded(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    for rel in (
        "anthropic/test_anthropic_tools_legacy.yaml",
        "gemini/test_client_spans.yaml",
        "mistral/test_mistralai_chat_legacy.yaml",
        "openai/test_vision.yaml",
    ):
        ev = event(case, rows[rel], "interaction 1")
        assert ev["attributes"]["http.response.content_encoding"] == ["gzip"], rel
        assert ev["response_model"] and not ev["output_text"].startswith("b'"), rel


def test_anthropic_tool_use_and_thinking(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(case, rows["anthropic/test_anthropic_tools_legacy.yaml"], "interaction 1")
    parts = ev["attributes"]["gen_ai.output.messages"][0]["parts"]
    assert [p.get("name") for p in parts if p["type"] == "tool_call"] == ["get_weather", "get_time"]
    assert json.loads(ev["tool_args"]) == {"location": "New York, NY", "unit": "fahrenheit"}
    assert ev["attributes"]["gen_ai.response.finish_reasons"] == ["tool_use"]  # as sent
    for rel in (
        "anthropic/test_anthropic_thinking_legacy.yaml",
        "anthropic/test_anthropic_thinking_streaming_legacy.yaml",
    ):
        ev = event(case, rows[rel], "interaction 1")
        kinds = [p["type"] for p in ev["attributes"]["gen_ai.output.messages"][0]["parts"]]
        assert kinds == ["reasoning", "text"], rel  # the thinking is not the answer
    cached = event(
        case, rows["anthropic/test_anthropic_prompt_caching_legacy.yaml"], "interaction 2"
    )
    assert cached["attributes"]["gen_ai.usage.cache_read.input_tokens"] == 1163
    assert cached["system_prompt"].startswith("You help generate concise summaries")


def test_streams_are_assembled_without_separators(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(case, rows["openai/test_streaming_with_api_usage_capture.yaml"], "interaction 1")
    assert ev["attributes"]["gen_ai.request.stream"] is True
    assert "\n\n**" in ev["output_text"] and "  \n" in ev["output_text"]  # the model's own
    gem = event(case, rows["gemini/test_streaming_text_content.yaml"], "interaction 1")
    assert gem["output_text"].startswith("Clementine was no ordinary calico. While")
    assert gem["attributes"]["http.response.stream_events"] == 12
    responses = event(
        case,
        rows["openai/test_responses_create_streaming_iteration[content_mode0].yaml"],
        "interaction 1",
    )
    assert responses["output_text"] == "Hi! How can I assist you today?"
    tools = event(
        case,
        rows["openai/test_open_ai_function_calls_tools_streaming_parallel.yaml"],
        "interaction 1",
    )
    parts = tools["attributes"]["gen_ai.output.messages"][0]["parts"]
    assert [json.loads(p["arguments"]) for p in parts] == [
        {"location": "San Francisco, CA"},
        {"location": "Tokyo, Japan"},
    ] or len(parts) == 2


def test_several_choices_are_kept_apart(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(
        case, rows["openai/test_chat_completion_multiple_choices_streaming.yaml"], "interaction 1"
    )
    attrs = ev["attributes"]
    assert attrs["gen_ai.response.choice_count"] == 2
    other = attrs["gen_ai.response.other_choices"][0]["parts"][0]["content"]
    assert other and other not in ev["output_text"]


def test_binary_event_streams(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(
        case, rows["bedrock/test_anthropic_converse_stream_with_tool_use.yaml"], "interaction 1"
    )
    assert (
        json.loads(ev["tool_args"]) == {"location": "Barcelona"} or "Barcelona" in ev["tool_args"]
    )
    nock = event(
        case, rows["bedrock/should-handle-basic-converse-stream-responses.json"], "element 1"
    )
    assert nock["output_text"].startswith("Hello! As an AI language model")


def test_failed_calls_carry_their_error(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    for rel, locator, words in (
        (
            "openai/TestLM.test_exception_event_recorded_on_lm_error.yaml",
            "interaction 1",
            "API key",
        ),
        ("gemini/test_generate_content_missing_model.yaml", "interaction 1", "not found"),
        ("openai/test_embeddings_model_not_found.yaml", "interaction 1", "does not exist"),
        ("openai/test_vision.yaml", "interaction 3", "downloading"),
    ):
        ev = event(case, rows[rel], locator)
        assert ev["status"] == "error" and words.lower() in ev["error"].lower(), (rel, ev["error"])


def test_no_date_header_says_where_the_time_came_from(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(case, rows["bedrock/test_converse_tool_use_message.yaml"], "interaction 1")
    assert ev["attributes"]["forensics.ts_source"] == "file modified time" and ev["ts"]


def test_litellm_langfuse_batches(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(case, rows["litellm/streaming_completion.json"], "document: batch[1]")
    assert (ev["trace_id"], ev["cost_usd"]) == ("9962d2b7-31c1-4204-80cf-114914c839ac", 3.15e-05)
    router = event(case, rows["litellm/completion_with_router.json"], "document: batch[1]")
    assert "model_group" in json.dumps(router["attributes"])


@pytest.mark.parametrize(
    "rel",
    [
        "langfuse/microsoft-agent-2025-12-17.trace.json",
        "langfuse/openai-agents-2025-09-30.trace.json",
    ],
)
def test_agent_traces_tokens_add_up(loaded: Any, rel: str) -> None:
    """Agent spans' usage is their children's: summed over the trace, the loaded tokens and
    cost are the model calls' own, and the agent's numbers are kept, marked."""
    case, rows = loaded["traces"]
    ev = rows[rel]["evidence_id"]
    total, calls_only = (
        case.sql(
            "SELECT (SELECT [sum(input_tokens), sum(output_tokens)] FROM events "
            "        WHERE evidence_id = $e), "
            "       (SELECT [sum(input_tokens), sum(output_tokens)] FROM events "
            "        WHERE evidence_id = $e AND kind = 'llm')",
            e=ev,
        )
        .rows()[0]
        .values()
    )
    assert total == calls_only and total[0] > 0
    marked = case.sql(
        "SELECT count(*) AS n FROM events WHERE evidence_id = $e AND kind = "
        "'agent' AND json_exists(attributes, '$.\"forensics.usage_rollup\"')",
        e=ev,
    ).rows()[0]["n"]
    assert marked >= 1


def test_pydantic_ai_rollup(loaded: Any) -> None:
    case, rows = loaded["traces2"]
    ev = event(
        case, rows["langfuse/pydantic-ai-2025-06-06.trace.json"], "document: observations[1]"
    )
    assert ev["input_tokens"] is None
    assert ev["attributes"]["forensics.usage_rollup"]["input_tokens"] == 31

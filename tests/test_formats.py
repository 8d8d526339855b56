"""Vendor formats: each shape detected without --format, read into the canonical tables,
and a malformed record in any of them rejected with its locator (never a crash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from forensics.core.errors import FormatError
from forensics.ingest.vendors import detect_format, otlp, vendor_names

from . import formats_data as fd


def load(case: Any, path: Path, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = case.load(path, **kw).rows()[0]
    assert row["records_in"] == row["rows_loaded"] + row["rows_rejected"]
    return row


def event(case: Any, event_id: str) -> dict[str, Any]:
    rows = case.sql("SELECT * FROM events WHERE event_id = $e", e=event_id).rows()
    assert len(rows) == 1, event_id
    row: dict[str, Any] = rows[0]
    row["attributes"] = json.loads(row["attributes"])
    return row


def rejects(case: Any) -> list[tuple[str, str]]:
    return [(r["locator"], r["reason"]) for r in
            case.sql("SELECT locator, reason FROM rejects ORDER BY rowid").rows()]


def test_vendor_readers_are_registered() -> None:
    assert {"otlp", "openinference", "otel-sdk", "langfuse", "langsmith", "openai",
            "litellm"} <= set(vendor_names())


def test_otlp_genai_conventions_of_every_version(case: Any, tmp_path: Path) -> None:
    path = fd.otlp_genai(tmp_path)
    row = load(case, path)
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("otlp", 4, 0)
    chat = event(case, fd.LLM)
    assert (chat["trace_id"], chat["parent_id"], chat["kind"]) == (fd.TRACE, fd.ROOT, "llm")
    assert (chat["provider"], chat["model"], chat["response_model"]) == \
        ("openai", "gpt-4o", "gpt-4o-2024-11-20")
    assert (chat["input_tokens"], chat["output_tokens"], chat["finish_reason"]) == (120, 42, "stop")
    assert chat["system_prompt"] == "You are Lumen's support assistant."
    assert (chat["input_text"], chat["output_text"]) == ("How do I export notes?",
                                                         "Open Settings > Export.")
    assert (chat["user_id"], chat["session_id"], chat["feature"], chat["release"]) == \
        ("u-42", "conv-7", "support-api", "2026.03.1")
    assert (chat["prompt_name"], chat["prompt_version"], chat["retrieval_version"]) == \
        ("support_system", "v13", "kb-2026-03-01")
    assert chat["ts"] == "2026-03-02T10:00:00" and chat["duration_ms"] == 1250.0
    # held in full by canonical columns: gone from attributes; the rest kept
    attrs = chat["attributes"]
    assert "gen_ai.input.messages" not in attrs and "gen_ai.request.model" not in attrs
    assert attrs["tenant"] == "northwind" and attrs["http.retries"] == 2
    assert attrs["otel.span_kind"] == "client"
    assert attrs["otel.scope"]["name"] == "opentelemetry.instrumentation.openai_v2"
    tool = event(case, fd.TOOL)
    assert (tool["kind"], tool["parent_id"], tool["tool_name"], tool["tool_args"]) == \
        ("tool", fd.LLM, "search", '{"q": "export"}')
    assert (tool["status"], tool["error"], tool["output_text"]) == \
        ("error", "TimeoutError: search took 30s", "3 results")
    old = event(case, "b" * 16)    # 1.27-era: span events, gen_ai.system, prompt_tokens
    assert (old["provider"], old["input_tokens"], old["output_tokens"]) == ("openai", 11, 7)
    assert (old["input_text"], old["output_text"], old["status"]) == ("Say hi", "Hi!", "ok")
    assert old["attributes"]["otel.status_code"] == "UNSET"
    legacy = event(case, "d" * 16)  # batches, instrumentationLibrarySpans, base64 ids, enums
    assert legacy["trace_id"] == "c" * 32 and legacy["status"] == "error"
    assert legacy["error"] == "upstream 502"
    assert legacy["attributes"]["otel.span_kind"] == "internal"
    docs = case.sql("SELECT rank, doc_id, score FROM retrievals ORDER BY rank").rows()
    assert [(d["rank"], d["doc_id"], d["score"]) for d in docs] == \
        [(1, "kb/export.md", 0.91), (2, "kb/sync.md", 0.42)]
    mod = case.sql("SELECT * FROM moderations").rows()
    assert [(m["event_id"], m["stage"], m["category"], m["flagged"]) for m in mod] == \
        [(fd.LLM, "output", "harassment", False)]


@pytest.mark.parametrize("batch_bytes", [64 << 20, 1])
def test_otlp_log_events_join_their_span(case: Any, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         batch_bytes: int) -> None:
    # batch_bytes=1: the spans' line is streamed before the logs' line turns up, and
    # the file is then staged whole: the same outcome
    monkeypatch.setattr(otlp, "BATCH_BYTES", batch_bytes)
    row = load(case, fd.otlp_logs(tmp_path))
    assert (row["target"], row["rows_loaded"], row["rows_rejected"]) == ("events+feedback", 3, 0)
    chat = event(case, fd.LLM)
    assert (chat["system_prompt"], chat["input_text"], chat["output_text"]) == \
        ("Be brief.", "Where is my order?", "Let me check.")
    assert (chat["finish_reason"], chat["tool_name"], chat["tool_args"]) == \
        ("tool_calls", "track_order", '{"id": "A-1"}')
    assert chat["input_tokens"] == 30 and chat["status"] == "ok"
    names = [e["name"] for e in chat["attributes"]["events"]]
    assert names == ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]
    orphan = event(case, "4" * 16)           # log records of a span not in the file
    assert orphan["kind"] == "llm" and orphan["input_text"] == "orphan question"
    fb = case.sql("SELECT * FROM feedback").rows()
    assert [(f["event_id"], f["name"], f["value"], f["score"], f["negative"]) for f in fb] == \
        [(fd.LLM, "relevance", "irrelevant", 0.2, True)]


@pytest.mark.parametrize("batch_bytes", [64 << 20, 1])
def test_otlp_malformed_records_are_rejected_with_locators(case: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           batch_bytes: int) -> None:
    # batch_bytes=1: each line parsed in its own batch, the same outcome
    monkeypatch.setattr(otlp, "BATCH_BYTES", batch_bytes)
    row = load(case, fd.otlp_broken(tmp_path))
    assert (row["records_in"], row["rows_loaded"], row["rows_rejected"]) == (6, 1, 5)
    assert rejects(case) == [
        ("line 4: resourceSpans[0].scopeSpans[0].spans[0]", "missing timestamp"),
        ("line 4: resourceSpans[0].scopeSpans[0].spans[1]",
         "input_tokens: expected a number, got lots"),
        ("line 4: resourceSpans[0].scopeSpans[0].spans[2]",
         f"duplicate event_id {fd.LLM} (first at line 1: resourceSpans[0].scopeSpans[0]"
         ".spans[0])"),
        ("line 2", "truncated JSON record (expecting value, record ends at char 80)"),
        ("line 3", "not OTLP/JSON: no resourceSpans, batches or resourceLogs list")]
    raw = case.sql("SELECT raw FROM rejects WHERE locator LIKE '%spans[1]'").rows()[0]["raw"]
    assert json.loads(raw)["spanId"] == "6" * 16      # the span itself, not its whole line


def test_phoenix_span_json(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.phoenix_spans(tmp_path))
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("openinference", 4, 0)
    llm = event(case, "s-llm")
    assert (llm["model"], llm["response_model"], llm["provider"]) == \
        ("gpt-4o", "gpt-4o-2024-08-06", "openai")
    assert (llm["system_prompt"], llm["input_text"], llm["output_text"]) == \
        ("Answer from the handbook.", "How many vacation days?", "25 days a year.")
    assert (llm["user_id"], llm["session_id"], llm["prompt_version"]) == ("u-7", "sess-9", "v7")
    # the metadata JSON string lends its members: canonical names become columns
    assert (llm["feature"], llm["prompt_name"]) == ("doc_qa", "docqa_answer")
    assert llm["attributes"]["tenant"] == "contoso"
    assert not any(k.startswith(("llm.input_messages", "retrieval.documents"))
                   for k in llm["attributes"])
    assert event(case, "s-ret")["kind"] == "retriever"
    assert event(case, "s-tool")["error"] == "KeyError: 'policy'"
    docs = case.sql("SELECT event_id, rank, doc_id, score FROM retrievals ORDER BY ALL").rows()
    assert [(d["event_id"], d["rank"], d["doc_id"]) for d in docs] == [
        ("s-llm", 1, "hr/leave.md"), ("s-llm", 2, "hr/holidays.md"), ("s-ret", 1, "hr/leave.md")]
    guard = case.sql("SELECT * FROM moderations").rows()
    assert [(g["event_id"], g["category"], g["flagged"], g["action"]) for g in guard] == \
        [("s-guard", "pii", True, "redact")]


def test_phoenix_dataframe_parquet(case: Any, tmp_path: Path) -> None:
    path = tmp_path / "spans.parquet"
    pl.DataFrame(fd.phoenix_dataframe_rows()).write_parquet(path)
    assert detect_format(path) == "openinference"
    row = load(case, path)
    assert (row["rows_loaded"], row["rows_rejected"]) == (2, 0)
    first = event(case, "df-1")
    assert (first["input_text"], first["output_text"], first["input_tokens"]) == \
        ("hi there", "hello!", 20)
    assert (first["session_id"], first["user_id"], first["trace_id"]) == ("ps-1", "pu-1", "dt-1")
    assert event(case, "df-2")["parent_id"] == "df-1"
    assert case.sql("SELECT doc_id FROM retrievals").rows() == [{"doc_id": "d1"}]


def test_sdk_span_dumps(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.sdk_dump(tmp_path))
    assert (row["format"], row["rows_loaded"]) == ("otel-sdk", 2)
    py = event(case, "f" * 16)           # Traceloop flattened prompt / completion
    assert (py["trace_id"], py["provider"], py["input_text"], py["output_text"]) == \
        ("e" * 32, "anthropic", "2+2?", "4")
    assert (py["finish_reason"], py["feature"], py["status"]) == ("stop", "calc-bot", "ok")
    assert py["attributes"]["gen_ai.completion.0.finish_reason"] == "end_turn"  # as sent
    js = event(case, "2" * 16)           # Vercel AI SDK, hrtime pairs
    assert (js["kind"], js["model"], js["feature"], js["input_tokens"]) == \
        ("llm", "gpt-4o-mini", "haiku", 9)
    assert js["ts"] == "2026-03-02T11:00:00.005000" and js["duration_ms"] == 995.0


def test_langfuse_trace_export(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.langfuse_export(tmp_path))
    assert (row["format"], row["target"], row["rows_loaded"]) == ("langfuse", "events+feedback", 4)
    gen = event(case, "lf-gen-1")
    assert (gen["kind"], gen["trace_id"], gen["model"]) == ("llm", "lf-trace-1",
                                                            "gpt-4o-2024-08-06")
    assert (gen["user_id"], gen["session_id"], gen["feature"], gen["release"]) == \
        ("lf-user", "lf-session", "support_chat", "api-2026.03.1")
    assert (gen["prompt_name"], gen["prompt_version"]) == ("support_system", "13")
    assert (gen["input_tokens"], gen["output_tokens"], gen["cost_usd"]) == (50, 9, 0.0004)
    assert (gen["system_prompt"], gen["input_text"], gen["output_text"]) == \
        ("Be kind.", "Cancel my plan", "Done, your plan is cancelled.")
    assert gen["attributes"]["plan"] == "pro"                       # trace metadata
    assert gen["attributes"]["langfuse.trace"]["tags"] == ["beta"]
    span = event(case, "lf-span-1")
    assert (span["parent_id"], span["status"], span["error"]) == \
        ("lf-gen-1", "error", "billing API 503")
    fb = case.sql("SELECT * FROM feedback ORDER BY ts").rows()
    assert [(f["event_id"], f["name"], f["value"], f["negative"], f["source"]) for f in fb] == \
        [("lf-gen-1", "user-feedback", "False", True, "api"),
         (None, "toxicity", "0.05", False, "eval")]
    assert case.sql("SELECT doc_id FROM retrievals").rows() == [{"doc_id": "kb/cancel.md"}]


def test_langfuse_blob_exports(case: Any, tmp_path: Path) -> None:
    files = fd.langfuse_blob(tmp_path)
    got = {name: load(case, path) for name, path in files.items()}
    assert {n: (r["format"], r["target"], r["rows_loaded"]) for n, r in got.items()} == {
        "traces": ("langfuse", "events", 1), "observations": ("langfuse", "events", 1),
        "scores": ("langfuse", "feedback", 1)}
    trace = event(case, "bt-1")
    assert (trace["kind"], trace["user_id"], trace["feature"], trace["input_text"]) == \
        ("trace", "bu-1", "doc_qa", "What is the leave policy?")
    obs = event(case, "bo-1")
    assert (obs["trace_id"], obs["model"], obs["input_tokens"], obs["output_text"]) == \
        ("bt-1", "claude-3-5-sonnet", 30, "25 days")
    assert obs["attributes"]["langfuse.observation.level"] == "WARNING"   # not a column
    fb = case.sql("SELECT event_id, name, negative FROM feedback").rows()
    assert fb == [{"event_id": "bo-1", "name": "correctness", "negative": True}]


def test_langsmith_runs_and_feedback(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.langsmith_runs(tmp_path))
    assert (row["format"], row["rows_loaded"]) == ("langsmith", 3)
    llm = event(case, "00000000-0000-0000-0000-000000000002")
    assert (llm["kind"], llm["parent_id"], llm["provider"]) == \
        ("llm", "00000000-0000-0000-0000-000000000001", "anthropic")
    assert (llm["model"], llm["response_model"]) == ("claude-3-5-sonnet",
                                                     "claude-3-5-sonnet-20241022")
    assert (llm["system_prompt"], llm["input_text"], llm["output_text"]) == \
        ("You answer about Lumen.", "What is Lumen?", "A notes app.")
    assert (llm["input_tokens"], llm["cost_usd"], llm["session_id"]) == (21, 0.00012, "th-1")
    tool = event(case, "00000000-0000-0000-0000-000000000003")   # epoch-millisecond times
    assert (tool["status"], tool["error"], tool["duration_ms"]) == \
        ("error", "ConnectionError: refused", 100.0)
    assert event(case, "00000000-0000-0000-0000-000000000001")["release"] == "rev-3"
    fb_row = load(case, fd.langsmith_feedback(tmp_path))
    assert (fb_row["target"], fb_row["rows_loaded"]) == ("feedback", 2)
    fb = case.sql("SELECT event_id, name, value, negative FROM feedback ORDER BY ts").rows()
    assert [(f["name"], f["value"], f["negative"]) for f in fb] == \
        [("correctness", "0", True), ("thumbs", "up", False)]


def test_openai_request_response_logs(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.openai_logs(tmp_path))
    assert (row["format"], row["rows_loaded"], row["rows_rejected"]) == ("openai", 5, 0)
    resp = event(case, "resp_1")             # Responses API with a function call
    assert (resp["model"], resp["response_model"], resp["user_id"]) == \
        ("gpt-4.1", "gpt-4.1-2025-04-14", "cust-5")
    assert (resp["system_prompt"], resp["input_text"], resp["tool_name"], resp["tool_args"]) == \
        ("You are the order bot.", "Refund order A-7", "issue_refund", '{"order": "A-7"}')
    assert (resp["input_tokens"], resp["output_tokens"]) == (40, 12)
    assert event(case, "chatcmpl-2")["output_text"] == "I can't help with that."   # a refusal
    batch = event(case, "chatcmpl-9")
    assert (batch["output_text"], batch["response_model"]) == ("Batch answer",
                                                               "gpt-4o-mini-2024-07-18")
    limited = case.sql("SELECT * FROM events WHERE status = 'error'").rows()
    assert [(e["error"], e["output_text"]) for e in limited] == [("Rate limit reached", None)]
    mods = case.sql("SELECT category, flagged, score, action FROM moderations "
                    "ORDER BY score").rows()
    assert [(m["category"], m["flagged"], m["action"]) for m in mods] == \
        [("violence", False, "allow"), ("harassment", True, "flag")]


def test_openai_cassette(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.cassette(tmp_path))
    assert (row["format"], row["rows_loaded"]) == ("recording", 1)
    ev = event(case, "chatcmpl-c1")
    assert (ev["input_text"], ev["output_text"], ev["locator"]) == ("Name a color", "Blue",
                                                                     "interaction 1")


def test_litellm_payloads_and_spend_logs(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.litellm_logs(tmp_path))
    assert (row["format"], row["rows_loaded"]) == ("litellm", 2)
    failed = event(case, "ll-1")
    assert (failed["model"], failed["response_model"]) == ("gpt-4o-alias", "azure/gpt-4o-0806")
    assert (failed["status"], failed["error"], failed["user_id"]) == \
        ("error", "Guardrail blocked the request", "end-9")
    spend = event(case, "ll-2")              # JSON fields encoded as strings
    assert (spend["input_text"], spend["output_text"], spend["cost_usd"]) == \
        ("status?", "All good.", 0.002)
    assert (spend["user_id"], spend["session_id"]) == ("end-3", "ls-1")
    assert spend["attributes"]["request_tags"] == ["support_chat"]
    assert spend["attributes"]["metadata"] == {"user_api_key_team_alias": "support"}
    mods = case.sql("SELECT * FROM moderations").rows()
    assert [(m["event_id"], m["stage"], m["category"], m["flagged"]) for m in mods] == \
        [("ll-1", "input", "presidio-pii", True)]


BROKEN = {
    "phoenix": (fd.phoenix_spans, {"name": "x", "context": {"trace_id": "t", "span_id": "bad"},
                                   "span_kind": "LLM", "start_time": "yesterday",
                                   "attributes": {"llm.model_name": "m"}}, "openinference"),
    "sdk": (fd.sdk_dump, {"name": "x", "spanContext": {"traceId": "1" * 32, "spanId": "9" * 16},
                          "startTime": "soon", "attributes": {"gen_ai.system": "x"}}, "otel-sdk"),
    "langfuse": (lambda p: fd.langfuse_blob(p)["observations"],
                 {"id": "bad", "trace_id": "t", "type": "GENERATION", "start_time": "never",
                  "usage_details": {"input": "many"}}, "langfuse"),
    "langsmith": (fd.langsmith_runs, {"id": "bad", "run_type": "llm", "inputs": {},
                                      "start_time": "2026-13-45", "prompt_tokens": "x"},
                  "langsmith"),
    "openai": (fd.openai_logs, {"request": {"body": {"model": "m", "messages": []}},
                                "response": {"body": {"id": "r", "object": "chat.completion",
                                                      "created": "someday", "choices": []}}},
               "openai"),
    "litellm": (fd.litellm_logs, {"id": "bad", "call_type": "completion", "api_base": "",
                                  "startTime": "2026-03-02 10:00:00", "prompt_tokens": "ten"},
                "litellm"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_malformed_records_in_every_format_are_rejected(case: Any, tmp_path: Path,
                                                        name: str) -> None:
    make, bad, fmt = BROKEN[name]
    good = make(tmp_path)
    path = fd.broken_copy(good, bad)
    row = load(case, path)
    assert row["format"] == fmt
    got = rejects(case)
    assert row["rows_rejected"] == len(got) == 3, got
    n = len(good.read_text().splitlines())
    locators = sorted(loc for loc, _ in got)
    assert locators == sorted([f"line {n + 1}", f"line {n + 2}", f"line {n + 3}"])
    reasons = dict(got)
    assert reasons[f"line {n + 1}"].startswith(("truncated JSON", "invalid JSON"))
    assert "not an object" in reasons[f"line {n + 2}"]
    assert any(w in reasons[f"line {n + 3}"] for w in ("timestamp", "expected a number"))


def test_forced_format_and_refused_mismatch(case: Any, tmp_path: Path) -> None:
    path = fd.langsmith_runs(tmp_path)
    assert load(case, path, format="langsmith")["format"] == "langsmith"
    other = fd.openai_logs(tmp_path)
    row = load(case, other, format="openai")
    assert row["rows_loaded"] == 5
    with pytest.raises(FormatError):
        case.load(fd.cassette(tmp_path), format="jsonl")


def test_openinference_attributes_in_otlp(case: Any, tmp_path: Path) -> None:
    row = load(case, fd.otlp_openinference(tmp_path))
    assert (row["format"], row["rows_loaded"]) == ("otlp", 1)
    ev = event(case, fd.LLM)
    assert (ev["kind"], ev["model"], ev["response_model"]) == ("llm", "gpt-4o",
                                                              "gpt-4o-2024-08-06")
    assert (ev["input_text"], ev["output_text"]) == ("What is our refund policy?",
                                                     "30 days, no questions asked.")
    assert (ev["input_tokens"], ev["output_tokens"], ev["prompt_version"]) == (64, 9, "v4")
    assert (ev["session_id"], ev["user_id"], ev["feature"]) == ("oi-s", "oi-u", "support_chat")
    assert ev["attributes"]["plan"] == "pro"
    assert not any(k.startswith(("llm.input_messages", "llm.output_messages",
                                 "retrieval.documents")) for k in ev["attributes"])
    docs = case.sql("SELECT rank, doc_id, score, content FROM retrievals").rows()
    assert docs == [{"rank": 1, "doc_id": "policy.md", "score": 0.7,
                     "content": "Refunds within 30 days."}]

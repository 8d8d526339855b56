"""Cohere chat calls as recorded on the wire: v1 ``/v1/chat`` (``message``, ``preamble``,
``chat_history``; top-level ``text``, ``tool_calls``, ``meta.billed_units``), v1 streams
(``application/stream+json`` lines, ``stream-start`` ... ``stream-end``), v2 ``/v2/chat``
(``messages``; ``message.content[]``, ``message.tool_calls``, ``usage.billed_units``) and
v2 SSE streams (``content-delta``, ``tool-plan-delta``, ``tool-call-start/-delta``,
``message-end``), and ``/v1/generate`` (``generations[]``, also behind Bedrock).

Tokens are the billed units when stated, else the counted ones.

>>> assemble_v2([{"type": "content-delta", "delta": {"message": {"content": {"text": "a"}}}},
...              {"type": "content-delta", "delta": {"message": {"content": {"text": "b"}}}}]
...             )["message"]["content"]
[{'type': 'text', 'text': 'ab'}]
"""

from __future__ import annotations

from typing import Any

from forensics.ingest.vendors.calls import (
    Call,
    Exchange,
    error_text,
    merge_text,
    message,
    number,
    text_part,
    tool_call_part,
    tool_result_part,
)

ROLES = {"USER": "user", "CHATBOT": "assistant", "SYSTEM": "system", "TOOL": "tool"}


def claims(ex: Exchange) -> bool:
    return "cohere" in ex.host or (ex.path.endswith(("/v1/chat", "/v2/chat", "/v1/generate"))
                                   and "openai" not in ex.host)


def assemble_v1(events: list[Any]) -> dict[str, Any]:
    """v1 stream events -> the response ``stream-end`` carries, else one built from the
    ``text-generation`` pieces."""
    text = ""
    out: dict[str, Any] = {}
    for ev in events:
        if not isinstance(ev, dict):
            continue
        kind = ev.get("event_type")
        if kind == "stream-start":
            out["generation_id"] = ev.get("generation_id")
        elif kind == "text-generation":
            text += str(ev.get("text", ""))
        elif kind == "tool-calls-generation":
            out["tool_calls"] = ev.get("tool_calls")
        elif kind == "stream-end":
            if isinstance(ev.get("response"), dict):
                return {**out, **ev["response"], "finish_reason": ev.get("finish_reason")}
            out["finish_reason"] = ev.get("finish_reason")
    return {**out, "text": text}


def assemble_v2(events: list[Any]) -> dict[str, Any]:
    """v2 SSE events -> a v2 chat response."""
    msg: dict[str, Any] = {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": []}
    out: dict[str, Any] = {"message": msg}
    text = ""
    for ev in events:
        if not isinstance(ev, dict):
            continue
        kind = ev.get("type")
        delta = ((ev.get("delta") or {}).get("message") or {})
        if kind == "message-start":
            out["id"] = ev.get("id")
        elif kind == "content-delta":
            text += str((delta.get("content") or {}).get("text", ""))
        elif kind == "tool-plan-delta":
            msg["tool_plan"] += str(delta.get("tool_plan", ""))
        elif kind == "tool-call-start":
            tc = dict(delta.get("tool_calls") or {})
            fn = dict(tc.get("function") or {})
            fn["arguments"] = fn.get("arguments") or ""
            tc["function"] = fn
            msg["tool_calls"].append(tc)
        elif kind == "tool-call-delta" and msg["tool_calls"]:
            piece = ((delta.get("tool_calls") or {}).get("function") or {}).get("arguments", "")
            msg["tool_calls"][-1]["function"]["arguments"] += str(piece)
        elif kind == "message-end":
            end = ev.get("delta") or {}
            out["finish_reason"] = end.get("finish_reason")
            out["usage"] = end.get("usage")
    if text:
        msg["content"] = [{"type": "text", "text": text}]
    return out


def _usage(usage: Any) -> tuple[int | None, int | None]:
    usage = usage if isinstance(usage, dict) else {}
    billed, counted = usage.get("billed_units") or {}, usage.get("tokens") or {}
    return (number(billed.get("input_tokens", counted.get("input_tokens"))),
            number(billed.get("output_tokens", counted.get("output_tokens"))))


def _v2_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    return [text_part(str(p.get("text", ""))) for p in content or []
            if isinstance(p, dict) and p.get("type", "text") == "text"]


def read(ex: Exchange) -> Call:
    req = ex.req
    v2 = "/v2/" in ex.path or isinstance(req.get("messages"), list)
    stream = ex.body.kind in ("sse", "ndjson")
    events = [i.data for i in ex.body.items]
    call = Call(provider="cohere", model=req.get("model"), stream=stream)
    if "/generate" in ex.path or "generations" in ex.resp:
        return generations(call, req, ex.resp, ex)
    if v2:
        for m in req.get("messages") or []:
            role = str(m.get("role", "user"))
            if role == "system":
                call.system += _v2_parts(m.get("content"))
            elif role == "tool":
                call.inputs.append(message("tool", [tool_result_part(
                    m.get("tool_call_id"), m.get("content"))]))
            else:
                call.inputs.append(message(role, _v2_parts(m.get("content"))))
        resp = assemble_v2(events) if stream else ex.resp
    else:
        if req.get("preamble"):
            call.system = [text_part(str(req["preamble"]))]
        for m in req.get("chat_history") or []:
            call.inputs.append(message(ROLES.get(str(m.get("role")).upper(), "user"),
                                       [text_part(str(m.get("message", "")))]))
        if req.get("message"):
            call.inputs.append(message("user", [text_part(str(req["message"]))]))
        resp = assemble_v1(events) if stream else ex.resp
    if ex.failed:
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    if v2:
        msg = resp.get("message") or {}
        parts = _v2_parts(msg.get("content"))
        if msg.get("tool_plan"):
            parts.insert(0, {"type": "reasoning", "content": msg["tool_plan"],
                             "kind": "tool_plan"})
        for t in msg.get("tool_calls") or []:
            fn = t.get("function") or {}
            parts.append(tool_call_part(t.get("id"), fn.get("name"), fn.get("arguments")))
        call.response_id = resp.get("id")
        call.input_tokens, call.output_tokens = _usage(resp.get("usage"))
        call.usage = resp.get("usage") or {}
    else:
        parts = [text_part(str(resp["text"]))] if resp.get("text") else []
        for t in resp.get("tool_calls") or []:
            parts.append(tool_call_part(None, t.get("name"), t.get("parameters")))
        call.response_id = resp.get("generation_id") or resp.get("response_id")
        call.input_tokens, call.output_tokens = _usage(resp.get("meta"))
        call.usage = resp.get("meta") or {}
    finish = resp.get("finish_reason")
    call.finish = [str(finish)] if finish else []
    call.outputs = [message("assistant", merge_text(parts), finish)] if parts else []
    call.response = resp
    return call


def generations(call: Call, req: dict[str, Any], resp: dict[str, Any], ex: Exchange) -> Call:
    """``/v1/generate`` (and Bedrock's Cohere Command): ``prompt`` in, ``generations[]``
    out (the first is the answer; the others are kept apart)."""
    if isinstance(req.get("prompt"), str):
        call.inputs = [message("user", [text_part(req["prompt"])])]
    if ex.failed:
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    gens = [g for g in resp.get("generations") or [] if isinstance(g, dict)]
    answers = [message("assistant", [text_part(str(g.get("text", "")))], g.get("finish_reason"))
               for g in gens]
    call.outputs, call.other_choices = answers[:1], answers[1:]
    call.finish = [str(g["finish_reason"]) for g in gens if g.get("finish_reason")]
    call.response_id = resp.get("id")
    call.input_tokens, call.output_tokens = _usage(resp.get("meta"))
    call.response = resp
    return call

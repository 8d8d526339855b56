"""Anthropic Messages API calls as recorded on the wire (``/v1/messages``, and the same
body through Bedrock ``InvokeModel``): system prompt (text or blocks), messages with
``tool_use`` / ``tool_result`` blocks, the answer's text, thinking and tool calls, usage
with prompt-cache reads and writes, and streams (``message_start`` ... ``message_stop``,
``text_delta``, ``input_json_delta``, ``thinking_delta``) assembled into the final message.

Input tokens are the prompt's total: ``input_tokens`` + cache reads + cache writes (what
OpenAI's ``prompt_tokens`` counts); the parts stay in ``attributes``.

>>> assemble([{"type": "message_start", "message": {"model": "m", "usage": {}}},
...           {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
...            "text": ""}},
...           {"type": "content_block_delta", "index": 0,
...            "delta": {"type": "text_delta", "text": "Hi"}},
...           {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
...            "usage": {"output_tokens": 2}}])["content"]
[{'type': 'text', 'text': 'Hi'}]
"""

from __future__ import annotations

import json
from typing import Any

from forensics.ingest.vendors.calls import (
    Call,
    Exchange,
    error_text,
    merge_text,
    message,
    number,
    reasoning_part,
    text_part,
    tool_call_part,
    tool_result_part,
    total,
)


def claims(ex: Exchange) -> bool:
    return ex.host.endswith("anthropic.com") or ex.path.rstrip("/").endswith("/v1/messages") \
        or ex.resp.get("type") == "message" or any(
            isinstance(i.data, dict) and i.data.get("type") == "message_start"
            for i in ex.body.items[:3])


def assemble(events: list[Any]) -> dict[str, Any]:
    """Stream events -> the final ``message``: blocks by index, text and thinking joined,
    tool input parsed from its ``partial_json`` pieces, stop reason and usage merged."""
    msg: dict[str, Any] = {"type": "message", "content": []}
    blocks: dict[int, dict[str, Any]] = {}
    pieces: dict[int, str] = {}
    for ev in events:
        if not isinstance(ev, dict):
            continue
        kind = ev.get("type")
        if kind == "message_start" and isinstance(ev.get("message"), dict):
            msg.update({k: v for k, v in ev["message"].items() if k != "content"})
        elif kind == "content_block_start":
            blocks[int(ev.get("index", len(blocks)))] = dict(ev.get("content_block") or {})
        elif kind == "content_block_delta":
            idx = int(ev.get("index", 0))
            block = blocks.setdefault(idx, {"type": "text", "text": ""})
            delta = ev.get("delta") or {}
            dt = delta.get("type")
            if dt == "text_delta":
                block["text"] = block.get("text", "") + delta.get("text", "")
            elif dt == "thinking_delta":
                block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            elif dt == "signature_delta":
                block["signature"] = block.get("signature", "") + delta.get("signature", "")
            elif dt == "input_json_delta":
                pieces[idx] = pieces.get(idx, "") + delta.get("partial_json", "")
        elif kind == "message_delta":
            msg.update({k: v for k, v in (ev.get("delta") or {}).items() if v is not None})
            msg["usage"] = {**(msg.get("usage") or {}), **(ev.get("usage") or {})}
        elif kind == "error":
            msg["error"] = ev.get("error")
    for idx, text in pieces.items():
        try:
            blocks[idx]["input"] = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            blocks[idx]["input"] = text
    msg["content"] = [blocks[i] for i in sorted(blocks)]
    return msg


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text":
            parts.append(text_part(str(b.get("text", ""))))
        elif kind == "thinking":
            parts.append(reasoning_part(str(b.get("thinking", ""))))
        elif kind == "redacted_thinking":
            parts.append({"type": "reasoning", "content": "", "redacted": True})
        elif kind in ("tool_use", "server_tool_use"):
            parts.append(tool_call_part(b.get("id"), b.get("name"), b.get("input")))
        elif kind == "tool_result":
            result = b.get("content")
            if isinstance(result, list):
                result = "".join(str(x.get("text", "")) for x in result if isinstance(x, dict))
            parts.append(tool_result_part(b.get("tool_use_id"), result))
        else:
            parts.append({"type": str(kind)})
    return parts


def inputs(req: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system parts, messages) of a Messages request; a user turn holding only tool
    results is the ``tool`` role."""
    system = _blocks(req.get("system")) if req.get("system") else []
    msgs: list[dict[str, Any]] = []
    for m in req.get("messages") or []:
        if not isinstance(m, dict):
            continue
        parts = _blocks(m.get("content"))
        role = str(m.get("role", "user"))
        if role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        msgs.append(message(role, parts))
    return system, msgs


def from_message(call: Call, resp: dict[str, Any]) -> Call:
    """Fill ``call`` from an Anthropic ``message`` object."""
    usage = resp.get("usage") or {}
    call.response_model = resp.get("model")
    call.response_id = resp.get("id")
    stop = resp.get("stop_reason")
    call.finish = [str(stop)] if stop else []
    parts = merge_text(_blocks(resp.get("content")))
    call.outputs = [message(str(resp.get("role", "assistant")), parts, stop)] if parts or stop \
        else []
    call.input_tokens = total(usage.get("input_tokens"), usage.get("cache_read_input_tokens"),
                              usage.get("cache_creation_input_tokens"))
    call.output_tokens = number(usage.get("output_tokens"))
    call.usage = usage
    call.response = resp
    for key, attr in (("cache_read_input_tokens", "gen_ai.usage.cache_read.input_tokens"),
                      ("cache_creation_input_tokens",
                       "gen_ai.usage.cache_creation.input_tokens")):
        if number(usage.get(key)):
            call.extra[attr] = number(usage.get(key))
    return call


def read(ex: Exchange) -> Call:
    req = ex.req
    system, msgs = inputs(req)
    call = Call(provider="anthropic", model=req.get("model"), system=system, inputs=msgs,
                stream=ex.body.kind in ("sse", "eventstream", "ndjson"))
    resp = assemble([i.data for i in ex.body.items]) if call.stream else ex.resp
    if ex.failed or resp.get("type") == "error":
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    return from_message(call, resp)

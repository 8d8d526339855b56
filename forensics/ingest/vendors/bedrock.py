"""Amazon Bedrock calls as recorded on the wire: ``Converse`` and ``ConverseStream``
(binary event stream, ``contentBlockDelta`` text and ``toolUse`` input pieces) and
``InvokeModel`` / ``InvokeModelWithResponseStream`` with the body of the model family
the model id names (Anthropic Messages, Cohere Command, Meta Llama, Mistral, Amazon Titan
and Nova). The model id comes from the URL (``/model/<id>/converse``); token counts from
the body, else the ``x-amzn-bedrock-*-token-count`` headers.

>>> model_of("/model/anthropic.claude-3-sonnet-20240229-v1:0/invoke")
('anthropic.claude-3-sonnet-20240229-v1:0', 'invoke')
"""

from __future__ import annotations

import json
import re
from typing import Any

from forensics.ingest.vendors import anthropic, cohere
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
from forensics.ingest.vendors.transport import header

_PATH = re.compile(r"/model/([^/]+)/(converse-stream|converse|invoke-with-response-stream|invoke)"
                   r"/?$")


FAMILIES = ("anthropic", "cohere", "meta", "mistral", "amazon", "ai21", "deepseek", "openai",
            "qwen", "writer")


def model_of(path: str) -> tuple[str | None, str | None]:
    found = _PATH.search(path)
    return (found.group(1), found.group(2)) if found else (None, None)


def claims(ex: Exchange) -> bool:
    return "bedrock" in ex.host or model_of(ex.path)[0] is not None


def _content(blocks: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for b in blocks if isinstance(blocks, list) else []:
        if not isinstance(b, dict):
            continue
        if isinstance(b.get("text"), str):
            parts.append(text_part(b["text"]))
        elif isinstance(b.get("toolUse"), dict):
            tu = b["toolUse"]
            parts.append(tool_call_part(tu.get("toolUseId"), tu.get("name"), tu.get("input")))
        elif isinstance(b.get("toolResult"), dict):
            tr = b["toolResult"]
            result = [c.get("text", c.get("json")) for c in tr.get("content") or []
                      if isinstance(c, dict)]
            parts.append(tool_result_part(tr.get("toolUseId"),
                                          result[0] if len(result) == 1 else result))
        elif isinstance(b.get("reasoningContent"), dict):
            text = (b["reasoningContent"].get("reasoningText") or {}).get("text", "")
            parts.append(reasoning_part(str(text)))
        else:
            parts.append({"type": next(iter(b), "unknown")})
    return parts


def converse_stream(events: list[Any]) -> dict[str, Any]:
    """ConverseStream events -> a Converse response."""
    blocks: dict[int, dict[str, Any]] = {}
    pieces: dict[int, str] = {}
    out: dict[str, Any] = {}
    role = "assistant"
    for data in events:
        if not isinstance(data, dict):
            continue
        idx = int(data.get("contentBlockIndex", 0))
        if "role" in data and "contentBlockIndex" not in data:
            role = str(data["role"])
        if isinstance(data.get("start"), dict) and isinstance(data["start"].get("toolUse"), dict):
            blocks[idx] = {"toolUse": dict(data["start"]["toolUse"])}
        delta = data.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("text"), str):
                block = blocks.setdefault(idx, {"text": ""})
                block["text"] = block.get("text", "") + delta["text"]
            elif isinstance(delta.get("toolUse"), dict):
                pieces[idx] = pieces.get(idx, "") + str(delta["toolUse"].get("input", ""))
            elif isinstance(delta.get("reasoningContent"), dict):
                block = blocks.setdefault(idx, {"reasoningContent": {"reasoningText":
                                                                     {"text": ""}}})
                rt = block["reasoningContent"]["reasoningText"]
                rt["text"] += str(delta["reasoningContent"].get("text", ""))
        if data.get("stopReason"):
            out["stopReason"] = data["stopReason"]
        for key in ("usage", "metrics", "trace"):
            if isinstance(data.get(key), dict):
                out[key] = data[key]
    for idx, text in pieces.items():
        tool = blocks.setdefault(idx, {"toolUse": {}})["toolUse"]
        try:
            tool["input"] = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError:
            tool["input"] = text
    out["output"] = {"message": {"role": role, "content": [blocks[i] for i in sorted(blocks)]}}
    return out


def _converse(call: Call, ex: Exchange) -> Call:
    req = ex.req
    call.system = [text_part(str(s["text"])) for s in req.get("system") or []
                   if isinstance(s, dict) and "text" in s]
    for m in req.get("messages") or []:
        parts = _content(m.get("content"))
        role = str(m.get("role", "user"))
        if parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        call.inputs.append(message(role, parts))
    resp = converse_stream([i.data for i in ex.body.items]) if call.stream else ex.resp
    if ex.failed:
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    msg = (resp.get("output") or {}).get("message") or {}
    stop = resp.get("stopReason")
    parts = merge_text(_content(msg.get("content")))
    call.outputs = [message("assistant", parts, stop)] if parts or stop else []
    call.finish = [str(stop)] if stop else []
    usage = resp.get("usage") or {}
    call.input_tokens = total(usage.get("inputTokens"), usage.get("cacheReadInputTokens"),
                              usage.get("cacheWriteInputTokens"))
    call.output_tokens = number(usage.get("outputTokens"))
    call.usage = usage
    call.response = resp
    if isinstance(resp.get("metrics"), dict) and number(resp["metrics"].get("latencyMs")):
        call.extra["bedrock.latency_ms"] = resp["metrics"]["latencyMs"]
    return call


def _invoke(call: Call, ex: Exchange, model: str) -> Call:
    """InvokeModel: the body of the model family."""
    req = ex.req
    family = next((p for p in model.split(".") if p in FAMILIES), "")
    events = [i.data for i in ex.body.items]
    if family == "anthropic" or "anthropic_version" in req:
        system, msgs = anthropic.inputs(req)
        call.system, call.inputs = system, msgs
        resp = anthropic.assemble(events) if call.stream else ex.resp
        if ex.failed:
            call.error = error_text(resp) or error_text(ex.body.text)
            return call
        anthropic.from_message(call, resp)
        call.response_model = call.response_model or model
    elif family == "cohere":
        inner = cohere.read(ex)
        inner.provider, inner.model = call.provider, model
        call = inner
    elif "messages" in req and family == "amazon":          # Nova: the Converse body
        return _converse(call, ex)
    else:
        call = _completion(call, ex)
    call.input_tokens = call.input_tokens if call.input_tokens is not None else number(
        header(ex.headers, "x-amzn-bedrock-input-token-count"))
    call.output_tokens = call.output_tokens if call.output_tokens is not None else number(
        header(ex.headers, "x-amzn-bedrock-output-token-count"))
    return call


def _completion(call: Call, ex: Exchange) -> Call:
    """Prompt-in, text-out families: Meta Llama, Mistral, Amazon Titan, AI21."""
    req, resp = ex.req, ex.resp
    prompt = req.get("prompt", req.get("inputText"))
    if isinstance(prompt, str):
        call.inputs = [message("user", [text_part(prompt)])]
    if ex.failed:
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    texts: list[tuple[str, Any]] = []
    if "generation" in resp:                                 # Meta Llama
        texts = [(str(resp["generation"]), resp.get("stop_reason"))]
        call.input_tokens = number(resp.get("prompt_token_count"))
        call.output_tokens = number(resp.get("generation_token_count"))
    elif isinstance(resp.get("outputs"), list):              # Mistral
        texts = [(str(o.get("text", "")), o.get("stop_reason")) for o in resp["outputs"]]
    elif isinstance(resp.get("results"), list):              # Amazon Titan
        texts = [(str(r.get("outputText", "")), r.get("completionReason"))
                 for r in resp["results"]]
        call.input_tokens = number(resp.get("inputTextTokenCount"))
        call.output_tokens = total(*(r.get("tokenCount") for r in resp["results"]))
    elif isinstance(resp.get("completions"), list):          # AI21
        texts = [(str((c.get("data") or {}).get("text", "")),
                  (c.get("finishReason") or {}).get("reason")) for c in resp["completions"]]
    answers = [message("assistant", [text_part(t)], f) for t, f in texts]
    call.outputs, call.other_choices = answers[:1], answers[1:]
    call.finish = [str(f) for _, f in texts if f]
    call.response = resp
    return call


def read(ex: Exchange) -> Call:
    model, action = model_of(ex.path)
    model = model or ex.req.get("modelId")
    call = Call(provider="aws.bedrock", model=model,
                stream=ex.body.kind in ("eventstream", "sse") or "stream" in (action or ""))
    if action in ("converse", "converse-stream") or (action is None and "messages" in ex.req
                                                      and "anthropic_version" not in ex.req):
        call = _converse(call, ex)
    else:
        call = _invoke(call, ex, str(model or ""))
    call.response_model = call.response_model or model
    call.response_id = call.response_id or header(ex.headers, "x-amzn-requestid")
    return call

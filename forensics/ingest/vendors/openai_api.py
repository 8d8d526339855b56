"""OpenAI and OpenAI-compatible APIs (Azure OpenAI, Mistral, DeepSeek, Groq, Together,
vLLM and other servers) as recorded on the wire: chat completions (plain and streamed
``chat.completion.chunk`` events, several choices, tool-call deltas), the Responses API
(plain and streamed, ``event:`` lines through ``response.completed``), legacy completions
and embeddings.

>>> chat_stream([{"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
...              {"choices": [{"index": 0, "delta": {"content": "lo"},
...                            "finish_reason": "stop"}]}])["choices"][0]["message"]
{'role': 'assistant', 'content': 'Hello'}
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
)

PATHS = ("/chat/completions", "/responses", "/completions", "/embeddings", "/moderations")
HOSTS = {"api.openai.com": "openai", "openai.azure.com": "azure.ai.openai",
         "api.mistral.ai": "mistral_ai", "api.deepseek.com": "deepseek", "api.groq.com": "groq",
         "api.together.xyz": "together", "api.fireworks.ai": "fireworks",
         "openrouter.ai": "openrouter", "api.x.ai": "xai", "api.perplexity.ai": "perplexity"}


def provider_of(host: str) -> str:
    for suffix, name in HOSTS.items():
        if host == suffix or host.endswith("." + suffix) or host.endswith(suffix):
            return name
    return "openai"


def claims(ex: Exchange) -> bool:
    return any(ex.path.rstrip("/").endswith(p) for p in PATHS) or \
        ex.resp.get("object") in ("chat.completion", "response", "text_completion")


def read(ex: Exchange) -> Call:
    path = ex.path.rstrip("/")
    provider = provider_of(ex.host)
    if path.endswith("/embeddings"):
        return _embeddings(ex, provider)
    if path.endswith("/moderations"):
        return _moderations(ex, provider)
    if path.endswith("/responses") or ex.resp.get("object") == "response":
        return _responses(ex, provider)
    return _chat(ex, provider)


# --- requests ---------------------------------------------------------------------------

def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for p in content if isinstance(content, list) else []:
        if isinstance(p, str):
            parts.append(text_part(p))
        elif isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text"):
            parts.append(text_part(str(p.get("text", ""))))
        elif isinstance(p, dict):
            kind = str(p.get("type", "unknown"))
            url = p.get("image_url", {}).get("url") if isinstance(p.get("image_url"), dict) \
                else p.get("image_url")
            parts.append({"type": kind, **({"uri": url} if isinstance(url, str) else {})})
    return parts


def chat_inputs(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system parts, messages) of a chat request's ``messages``."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages if isinstance(messages, list) else []:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "user"))
        if role in ("system", "developer"):
            system += _content_parts(m.get("content"))
            continue
        if role in ("tool", "function"):
            out.append(message("tool", [tool_result_part(m.get("tool_call_id"),
                                                         m.get("content"))]))
            continue
        parts = _content_parts(m.get("content"))
        for t in m.get("tool_calls") or []:
            fn = t.get("function", {}) if isinstance(t, dict) else {}
            parts.append(tool_call_part(t.get("id"), fn.get("name"), fn.get("arguments")))
        out.append(message(role, parts))
    return system, out


# --- chat completions -------------------------------------------------------------------

def chat_stream(chunks: list[Any]) -> dict[str, Any]:
    """``chat.completion.chunk`` events -> one ``chat.completion``: each choice's text
    joined (no separator), tool calls assembled from their deltas by index, the finish
    reason and the final usage chunk kept."""
    choices: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"object": "chat.completion"}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for key in ("id", "model", "created", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                out.setdefault(key, chunk[key])
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for c in chunk.get("choices") or []:
            idx = int(c.get("index", 0))
            choice = choices.setdefault(idx, {"index": idx, "message": {"role": "assistant"},
                                              "_tools": {}})
            delta = c.get("delta") or {}
            if delta.get("role"):
                choice["message"]["role"] = delta["role"]
            for key in ("content", "reasoning_content", "refusal"):
                if isinstance(delta.get(key), str):
                    choice["message"][key] = choice["message"].get(key, "") + delta[key]
            for t in delta.get("tool_calls") or []:
                slot = choice["_tools"].setdefault(int(t.get("index", len(choice["_tools"]))),
                                                   {"id": None, "type": "function",
                                                    "function": {"name": "", "arguments": ""}})
                slot["id"] = t.get("id") or slot["id"]
                fn = t.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                args = fn.get("arguments")
                slot["function"]["arguments"] += args if isinstance(args, str) else \
                    (json.dumps(args) if args is not None else "")
            if c.get("finish_reason"):
                choice["finish_reason"] = c["finish_reason"]
    out["choices"] = []
    for idx in sorted(choices):
        choice = choices[idx]
        tools = choice.pop("_tools")
        if tools:
            choice["message"]["tool_calls"] = [tools[i] for i in sorted(tools)]
        out["choices"].append(choice)
    return out


def _choice_message(choice: dict[str, Any]) -> dict[str, Any]:
    msg = choice.get("message") or {}
    parts: list[dict[str, Any]] = []
    if isinstance(msg.get("reasoning_content"), str):
        parts.append(reasoning_part(msg["reasoning_content"]))
    parts += _content_parts(msg.get("content")) if msg.get("content") is not None else []
    if isinstance(msg.get("refusal"), str):
        parts.append({"type": "refusal", "refusal": msg["refusal"]})
    for t in msg.get("tool_calls") or []:
        fn = t.get("function", {})
        parts.append(tool_call_part(t.get("id"), fn.get("name"), fn.get("arguments")))
    if choice.get("text") is not None:    # legacy completions
        parts.append(text_part(str(choice["text"])))
    return message(str(msg.get("role", "assistant")), merge_text(parts),
                   choice.get("finish_reason"))


def _chat(ex: Exchange, provider: str) -> Call:
    req = ex.req
    stream = ex.body.kind in ("sse", "ndjson")
    resp = chat_stream([i.data for i in ex.body.items]) if stream else ex.resp
    system, inputs = chat_inputs(req.get("messages"))
    if not inputs and isinstance(req.get("prompt"), str):
        inputs = [message("user", [text_part(req["prompt"])])]
    choices = [c for c in resp.get("choices") or [] if isinstance(c, dict)]
    answers = [_choice_message(c) for c in choices]
    usage = resp.get("usage") or {}
    return Call(provider=provider, operation="text_completion" if ex.path.endswith(
                    "/completions") and not ex.path.endswith("/chat/completions") else "chat",
                model=req.get("model"), response_model=resp.get("model"),
                response_id=resp.get("id"), system=system, inputs=inputs,
                outputs=answers[:1], other_choices=answers[1:],
                finish=[str(c["finish_reason"]) for c in choices if c.get("finish_reason")],
                input_tokens=number(usage.get("prompt_tokens")),
                output_tokens=number(usage.get("completion_tokens")),
                usage=usage, error=error_text(resp) if ex.failed or "error" in resp else None,
                response=resp if not ex.failed else None, stream=stream,
                ts=str(resp["created"]) if resp.get("created") else None)


# --- the Responses API ------------------------------------------------------------------

def responses_stream(items: list[Any]) -> dict[str, Any]:
    """Responses API stream events -> the final ``response``: the one ``response.completed``
    (or ``.incomplete`` / ``.failed``) carries, else text assembled from the deltas."""
    final: dict[str, Any] = {}
    text = ""
    for data in items:
        if not isinstance(data, dict):
            continue
        kind = str(data.get("type", ""))
        if kind in ("response.completed", "response.incomplete", "response.failed") \
                and isinstance(data.get("response"), dict):
            final = data["response"]
        elif kind == "response.created" and isinstance(data.get("response"), dict) \
                and not final:
            final = dict(data["response"])
        elif kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
            text += data["delta"]
    if not final.get("output") and text:
        final["output"] = [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}]
    return final


def _responses_inputs(req: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                    list[dict[str, Any]]]:
    system = [text_part(req["instructions"])] if isinstance(req.get("instructions"), str) else []
    value = req.get("input")
    if isinstance(value, str):
        return system, [message("user", [text_part(value)])]
    inputs: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "function_call":
            inputs.append(message("assistant", [tool_call_part(
                item.get("call_id"), item.get("name"), item.get("arguments"))]))
        elif kind == "function_call_output":
            inputs.append(message("tool", [tool_result_part(item.get("call_id"),
                                                            item.get("output"))]))
        elif kind == "message":
            role = str(item.get("role", "user"))
            if role in ("system", "developer"):
                system += _content_parts(item.get("content"))
            else:
                inputs.append(message(role, _content_parts(item.get("content"))))
    return system, inputs


def _responses(ex: Exchange, provider: str) -> Call:
    req = ex.req
    stream = ex.body.kind == "sse"
    resp = responses_stream([i.data for i in ex.body.items]) if stream else ex.resp
    system, inputs = _responses_inputs(req)
    parts: list[dict[str, Any]] = []
    for item in resp.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            parts += _content_parts(item.get("content"))
        elif item.get("type") == "function_call":
            parts.append(tool_call_part(item.get("call_id"), item.get("name"),
                                        item.get("arguments")))
        elif item.get("type") == "reasoning":
            summary = " ".join(s.get("text", "") for s in item.get("summary") or []
                               if isinstance(s, dict))
            if summary:
                parts.append(reasoning_part(summary))
    status = resp.get("status")
    reason = (resp.get("incomplete_details") or {}).get("reason") if isinstance(
        resp.get("incomplete_details"), dict) else None
    tool = any(p["type"] == "tool_call" for p in parts)
    finish = reason or ("tool_calls" if tool and status == "completed" else
                        "stop" if status == "completed" else status)
    usage = resp.get("usage") or {}
    return Call(provider=provider, model=req.get("model"), response_model=resp.get("model"),
                response_id=resp.get("id"), system=system, inputs=inputs,
                outputs=[message("assistant", merge_text(parts), finish)] if parts else [],
                finish=[finish] if finish else [],
                input_tokens=number(usage.get("input_tokens")),
                output_tokens=number(usage.get("output_tokens")), usage=usage,
                error=error_text(resp) if ex.failed or resp.get("error") else None,
                response=resp if not ex.failed else None, stream=stream,
                ts=str(resp["created_at"]) if resp.get("created_at") else None)


def _embeddings(ex: Exchange, provider: str) -> Call:
    req, resp = ex.req, ex.resp
    value = req.get("input")
    texts = [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    usage = resp.get("usage") or {}
    return Call(provider=provider, operation="embeddings", model=req.get("model"),
                response_model=resp.get("model"),
                inputs=[message("user", [text_part(t) for t in texts])] if texts else [],
                input_tokens=number(usage.get("prompt_tokens")), usage=usage,
                error=error_text(resp) if ex.failed else None,
                extra={"gen_ai.embeddings.count": len(resp.get("data") or [])} if not ex.failed
                else {})


def _moderations(ex: Exchange, provider: str) -> Call:
    """A moderation call: one ``moderation`` event per category of each result."""
    req, resp = ex.req, ex.resp
    value = req.get("input")
    texts = [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    events = []
    for res in resp.get("results") or []:
        scores = res.get("category_scores") or {}
        for cat, flagged in (res.get("categories") or {}).items():
            events.append({"name": "moderation", "attributes": {
                "stage": "input", "category": cat, "flagged": flagged,
                "score": scores.get(cat), "action": "flag" if flagged else "allow"}})
    return Call(provider=provider, operation="moderation", model=req.get("model"),
                response_model=resp.get("model"), response_id=resp.get("id"),
                inputs=[message("user", [text_part(t) for t in texts])] if texts else [],
                error=error_text(resp) if ex.failed else None, response=resp, events=events)

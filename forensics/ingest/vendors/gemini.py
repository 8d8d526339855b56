"""Google Gemini API and Vertex AI ``generateContent`` / ``streamGenerateContent`` calls
as recorded on the wire: the model from the URL (``models/gemini-2.0-flash:generate
Content``, ``publishers/google/models/...``), ``systemInstruction``, ``contents`` with
``functionCall`` / ``functionResponse`` parts, the first candidate's text, thoughts and
function calls, ``finishReason`` and ``usageMetadata``; SSE streams (``?alt=sse``) or JSON
arrays of chunks joined into one response.

Output tokens are ``candidatesTokenCount`` + ``thoughtsTokenCount`` (thinking is billed as
output); the parts stay in ``attributes``.

>>> model_of("/v1beta/models/gemini-2.0-flash:generateContent")
'gemini-2.0-flash'
"""

from __future__ import annotations

import re
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

_MODEL = re.compile(r"/models/([^/:]+)(?::([A-Za-z]+))?")


# the proto enum, as Vertex AI's REST transport may send it
FINISH_ENUM = {0: "FINISH_REASON_UNSPECIFIED", 1: "STOP", 2: "MAX_TOKENS", 3: "SAFETY",
               4: "RECITATION", 5: "OTHER", 6: "BLOCKLIST", 7: "PROHIBITED_CONTENT", 8: "SPII",
               9: "MALFORMED_FUNCTION_CALL", 10: "IMAGE_SAFETY", 11: "UNEXPECTED_TOOL_CALL"}


def finish_of(value: Any) -> str | None:
    """A candidate's finish reason as its name (the enum's number becomes its name)."""
    if value is None:
        return None
    return FINISH_ENUM.get(value, str(value)) if isinstance(value, int) else str(value)


def model_of(path: str) -> str | None:
    found = _MODEL.search(path)
    return found.group(1) if found else None


def claims(ex: Exchange) -> bool:
    return ex.host.endswith(("generativelanguage.googleapis.com", "aiplatform.googleapis.com")) \
        or bool(re.search(r":(stream)?[gG]enerateContent\b", ex.path)) \
        or "candidates" in ex.resp


def _parts(parts: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts if isinstance(parts, list) else []:
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("text"), str):
            out.append(reasoning_part(p["text"]) if p.get("thought") else text_part(p["text"]))
        elif isinstance(p.get("functionCall"), dict):
            fc = p["functionCall"]
            out.append(tool_call_part(fc.get("id"), fc.get("name"), fc.get("args")))
        elif isinstance(p.get("functionResponse"), dict):
            fr = p["functionResponse"]
            out.append(tool_result_part(fr.get("id") or fr.get("name"), fr.get("response")))
        else:
            kind = next((k for k in p if k not in ("thoughtSignature", "thought")), "unknown")
            out.append({"type": kind})
    return out


def assemble(chunks: list[Any]) -> dict[str, Any]:
    """Streamed ``GenerateContentResponse`` chunks -> one response: the first candidate's
    parts concatenated (adjacent text merged), the last finish reason, usage and ids."""
    out: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    finish = None
    role = "model"
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for key in ("modelVersion", "responseId", "createTime", "usageMetadata",
                    "promptFeedback"):
            if chunk.get(key) is not None:
                out[key] = chunk[key]
        for cand in chunk.get("candidates") or []:
            if int(cand.get("index", 0)) != 0:
                continue
            content = cand.get("content") or {}
            role = content.get("role", role)
            parts += [dict(p) for p in content.get("parts") or [] if isinstance(p, dict)]
            finish = cand.get("finishReason") or finish
    merged: list[dict[str, Any]] = []
    for p in parts:
        same = merged and isinstance(p.get("text"), str) and isinstance(
            merged[-1].get("text"), str) and bool(p.get("thought")) == bool(
            merged[-1].get("thought"))
        if same:
            merged[-1]["text"] += p["text"]
        else:
            merged.append(p)
    out["candidates"] = [{"index": 0, "content": {"role": role, "parts": merged},
                          **({"finishReason": finish} if finish else {})}]
    return out


def read(ex: Exchange) -> Call:
    req = ex.req
    system = _parts((req.get("systemInstruction") or req.get("system_instruction") or {}).get(
        "parts")) if isinstance(req.get("systemInstruction") or req.get("system_instruction"),
                                dict) else []
    msgs = []
    for c in req.get("contents") or []:
        if not isinstance(c, dict):
            continue
        parts = _parts(c.get("parts"))
        role = "assistant" if c.get("role") == "model" else str(c.get("role", "user"))
        if parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        msgs.append(message(role, parts))
    stream = ex.body.kind == "sse" or isinstance(ex.body.json, list)
    chunks = [i.data for i in ex.body.items] if ex.body.kind == "sse" else (
        ex.body.json if isinstance(ex.body.json, list) else [])
    resp = assemble(chunks) if stream else ex.resp
    call = Call(provider="gcp.vertex_ai" if "aiplatform" in ex.host or "/projects/" in ex.path
                else "gcp.gemini", operation="chat",
                model=model_of(ex.path) or req.get("model"), system=system, inputs=msgs,
                stream=stream)
    if ex.failed or "error" in resp:
        call.error = error_text(resp) or error_text(ex.body.text)
        return call
    cands = [c for c in resp.get("candidates") or [] if isinstance(c, dict)]
    answers = [message("assistant", merge_text(_parts((c.get("content") or {}).get("parts"))),
                       finish_of(c.get("finishReason"))) for c in cands]
    usage = resp.get("usageMetadata") or {}
    call.response_model = resp.get("modelVersion")
    call.response_id = resp.get("responseId")
    call.outputs, call.other_choices = answers[:1], answers[1:]
    call.finish = [str(finish_of(c["finishReason"])) for c in cands
                   if c.get("finishReason") is not None]
    call.input_tokens = number(usage.get("promptTokenCount"))
    call.output_tokens = total(usage.get("candidatesTokenCount"),
                               usage.get("thoughtsTokenCount"))
    call.usage = usage
    call.response = resp
    call.ts = resp.get("createTime")
    if number(usage.get("cachedContentTokenCount")):
        call.extra["gen_ai.usage.cache_read.input_tokens"] = usage["cachedContentTokenCount"]
    if number(usage.get("thoughtsTokenCount")):
        call.extra["gen_ai.usage.reasoning.output_tokens"] = usage["thoughtsTokenCount"]
    return call

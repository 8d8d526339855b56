"""One recorded model call, whatever the provider: the HTTP exchange as recorded
(:class:`Exchange`) and what a provider module reads out of it (:class:`Call`), in the
OpenTelemetry GenAI message form (``role`` + ``parts``) the span mapper understands.

Provider modules (``anthropic``, ``gemini``, ``bedrock``, ``cohere``, ``openai_api``)
each offer ``claims(exchange) -> bool`` and ``read(exchange) -> Call``; the recording
reader tries them in turn. Finish reasons are kept as the provider says them
(``end_turn``, ``STOP``, ``COMPLETE``); the canonical vocabulary is applied once, in SQL,
for every reader (``_fx_finish``).

>>> text_part("hi")
{'type': 'text', 'content': 'hi'}
>>> message("user", [text_part("hi")])
{'role': 'user', 'parts': [{'type': 'text', 'content': 'hi'}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from forensics.ingest.vendors.transport import Body


@dataclass
class Exchange:
    """One request / response pair of a recording."""

    locator: str
    method: str
    url: str
    request: Any                 # the request body: parsed JSON, text, or None
    req_headers: dict[str, Any]
    status: int | None
    headers: dict[str, Any]      # the response headers
    body: Body
    recorded_at: str | None = None

    @property
    def path(self) -> str:
        return unquote(urlparse(self.url).path)

    @property
    def host(self) -> str:
        return (urlparse(self.url).hostname or "").lower()

    @property
    def req(self) -> dict[str, Any]:
        """The request body when it is a JSON object, else ``{}``."""
        return self.request if isinstance(self.request, dict) else {}

    @property
    def resp(self) -> dict[str, Any]:
        """The response body when it is a JSON object, else ``{}``."""
        return self.body.json if isinstance(self.body.json, dict) else {}

    @property
    def failed(self) -> bool:
        return self.status is not None and self.status >= 400


@dataclass
class Call:
    """What a provider module reads out of an exchange."""

    provider: str
    operation: str = "chat"
    model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    system: list[dict[str, Any]] = field(default_factory=list)   # parts
    inputs: list[dict[str, Any]] = field(default_factory=list)   # messages
    outputs: list[dict[str, Any]] = field(default_factory=list)  # the (first) answer
    other_choices: list[dict[str, Any]] = field(default_factory=list)
    finish: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    usage: dict[str, Any] = field(default_factory=dict)          # provider usage details
    error: str | None = None
    response: Any = None         # the final response (a stream assembled into one)
    stream: bool = False
    ts: str | None = None        # a time the response body states (epoch seconds, ISO)
    extra: dict[str, Any] = field(default_factory=dict)          # more attributes
    events: list[dict[str, Any]] = field(default_factory=list)   # {name, attributes}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "content": text}


def reasoning_part(text: str) -> dict[str, Any]:
    return {"type": "reasoning", "content": text}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A tool call; ``arguments`` as the provider sent them (JSON text stays text, so
    ``tool_args`` is the exact text the model produced)."""
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def tool_result_part(call_id: Any, result: Any) -> dict[str, Any]:
    return {"type": "tool_call_response", "id": call_id, "response": result}


def message(role: str, parts: list[dict[str, Any]],
            finish: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": role, "parts": parts}
    if finish is not None:
        out["finish_reason"] = finish
    return out


def merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text parts (stream chunks) joined into one, with nothing in between;
    empty text parts (a tool-call chunk's ``content: ""``) dropped."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if part.get("type") in ("text", "reasoning") and not part.get("content") \
                and not part.get("redacted"):
            continue
        if out and part.get("type") in ("text", "reasoning") \
                and out[-1].get("type") == part.get("type"):
            out[-1] = {**out[-1], "content": out[-1]["content"] + part["content"]}
        else:
            out.append(dict(part))
    return out


def number(value: Any) -> int | None:
    """An integer token count, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def total(*values: Any) -> int | None:
    """Sum of the counts present; None when none is."""
    got = [n for n in (number(v) for v in values) if n is not None]
    return sum(got) if got else None


def error_text(body: Any) -> str | None:
    """The message of an error body in the shapes providers use (``error.message``,
    ``message``, ``Message``, ``detail``), else the body's text."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            msg = err.get("message") or err.get("code") or err.get("type")
            return str(msg) if msg is not None else json.dumps(err)
        if isinstance(err, str):
            return err
        for key in ("message", "Message", "detail", "error_message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return None

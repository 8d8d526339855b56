"""What HTTP recordings store, decoded: compressed bodies (gzip, deflate, brotli; YAML
``!!binary``, hex strings), and the stream formats model APIs answer with (server-sent
events with or without ``event:`` lines, newline-delimited JSON, the binary AWS event
stream), parsed into JSON items a provider module assembles into its final message.

Recordings are small files (a few interactions), so the decoding is plain Python.

>>> import gzip
>>> decode_body(gzip.compress(b'{"ok": true}'), {}).json
{'ok': True}
>>> [item.data for item in decode_body('data: {"a": 1}\\n\\ndata: [DONE]\\n\\n', {}).items]
[{'a': 1}, '[DONE]']
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import brotli

STREAM_TYPES = ("text/event-stream", "application/stream+json", "application/x-ndjson",
                "application/jsonl", "application/vnd.amazon.eventstream")


@dataclass
class StreamItem:
    """One event of a stream: its ``event`` name (SSE ``event:`` line, AWS
    ``:event-type`` header), and its data (parsed JSON, or the text when not JSON)."""

    event: str | None
    data: Any


@dataclass
class Body:
    """A decoded body: ``kind`` is ``json``, ``sse``, ``ndjson``, ``eventstream``,
    ``text`` or ``empty``; ``json`` the parsed value of a JSON body; ``items`` the
    events of a stream; ``encoding`` the transfer encodings undone, in order."""

    kind: str
    json: Any = None
    text: str = ""
    items: list[StreamItem] = field(default_factory=list)
    encoding: list[str] = field(default_factory=list)


def header(headers: dict[str, Any], name: str) -> str | None:
    """A header's (first) value, whatever the case of its name and whether the recorder
    stored values as lists.

    >>> header({"Content-Type": ["application/json"]}, "content-type")
    'application/json'
    """
    for key, value in headers.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else None
            return None if value is None else str(value)
    return None


def as_bytes(value: Any, *, hex_hint: bool = False) -> bytes | None:
    """Raw bytes of a stored body: bytes as they are (YAML ``!!binary``), a hex string when
    the recorder says the body is binary (nock's ``responseIsBinary``), a text as UTF-8;
    None for a body already parsed (a JSON object or list)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        if hex_hint and re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value.strip()):
            return binascii.unhexlify(value.strip())
        return value.encode("utf-8")
    return None


def decompress(data: bytes, declared: str | None = None) -> tuple[bytes, list[str]]:
    """Undo ``Content-Encoding`` (gzip, deflate, br), by magic bytes or as declared. A body
    the recorder already decoded (the header still says gzip) is returned as it is.

    >>> decompress(zlib.compress(b"hi"), "deflate")
    (b'hi', ['deflate'])
    """
    done: list[str] = []
    for _ in range(3):  # a body encoded twice is rare but real
        if data[:2] == b"\x1f\x8b":
            data, step = gzip.decompress(data), "gzip"
        elif data[:1] == b"\x78" and len(data) > 2 and (data[0] * 256 + data[1]) % 31 == 0:
            try:
                data, step = zlib.decompress(data), "deflate"
            except zlib.error:
                break
        elif declared and "br" in declared.lower() and "br" not in done:
            try:
                data, step = brotli.decompress(data), "br"
            except brotli.error:
                break
        elif declared and "deflate" in declared.lower() and "deflate" not in done:
            try:
                data, step = zlib.decompress(data, -15), "deflate"
            except zlib.error:
                break
        else:
            break
        done.append(step)
    return data, done


def decode_body(value: Any, headers: dict[str, Any], *, hex_hint: bool = False) -> Body:
    """A stored body -> :class:`Body`: bytes decompressed, text parsed as JSON or as the
    stream its content type (or its first line) says."""
    if isinstance(value, dict | list):
        return Body("json", json=value)
    if value is None:
        return Body("empty")
    raw = as_bytes(value, hex_hint=hex_hint)
    if raw is None:
        return Body("text", text=str(value))
    data, encoding = decompress(raw, header(headers, "content-encoding"))
    ctype = (header(headers, "content-type") or "").lower()
    if "vnd.amazon.eventstream" in ctype or _looks_eventstream(data):
        return Body("eventstream", items=eventstream(data), encoding=encoding)
    text = data.decode("utf-8", errors="replace")
    body = parse_text(text, ctype)
    body.encoding = encoding
    return body


def parse_text(text: str, ctype: str = "") -> Body:
    """A text body: JSON, server-sent events, newline-delimited JSON, or plain text."""
    stripped = text.strip()
    if not stripped:
        return Body("empty", text=text)
    is_sse = "event-stream" in ctype or bool(re.match(r"(?:event|data|id|retry)\s*:", stripped))
    if not is_sse:
        try:
            return Body("json", json=json.loads(stripped), text=text)
        except json.JSONDecodeError:
            pass
        lines = [ln for ln in stripped.splitlines() if ln.strip()]
        items = [_json_or_text(ln) for ln in lines]
        if len(lines) > 1 and all(isinstance(x, dict) for x in items):
            return Body("ndjson", text=text, items=[StreamItem(_event_of(x), x) for x in items])
        return Body("text", text=text)
    return Body("sse", text=text, items=sse(text))


def sse(text: str) -> list[StreamItem]:
    """Server-sent events: blocks separated by blank lines, ``event:`` and ``data:``
    fields (several ``data:`` lines are one value joined by newlines), comments skipped.

    >>> [(i.event, i.data) for i in sse("event: ping\\ndata: {}\\n\\ndata: x\\n")]
    [('ping', {}), (None, 'x')]
    """
    items: list[StreamItem] = []
    event: str | None = None
    data: list[str] = []

    def flush() -> None:
        nonlocal event, data
        if data:
            items.append(StreamItem(event, _json_or_text("\n".join(data))))
        event, data = None, []

    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            flush()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value.strip()
            elif name == "data":
                data.append(value)
    flush()
    return items


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _event_of(item: Any) -> str | None:
    if isinstance(item, dict):
        kind = item.get("event_type", item.get("type"))
        return kind if isinstance(kind, str) else None
    return None


def _looks_eventstream(data: bytes) -> bool:
    """An AWS event-stream message starts with its total length, its headers' length and
    a CRC of those 8 bytes."""
    if len(data) < 16:
        return False
    total, hlen = struct.unpack(">II", data[:8])
    return (16 <= total <= len(data) and hlen < total
            and zlib.crc32(data[:8]) == struct.unpack(">I", data[8:12])[0])


def eventstream(data: bytes) -> list[StreamItem]:
    """AWS ``application/vnd.amazon.eventstream`` frames -> one item per message, named by
    its ``:event-type`` (or ``:exception-type``) header; a payload wrapping the model's
    own chunk as base64 ``bytes`` (InvokeModelWithResponseStream) is unwrapped."""
    items: list[StreamItem] = []
    pos = 0
    while pos + 16 <= len(data):
        total, hlen = struct.unpack(">II", data[pos:pos + 8])
        if total < 16 or pos + total > len(data):
            break
        headers = _es_headers(data[pos + 12:pos + 12 + hlen])
        payload = data[pos + 12 + hlen:pos + total - 4]
        value = _json_or_text(payload.decode("utf-8", errors="replace"))
        if isinstance(value, dict) and isinstance(value.get("bytes"), str):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                value = _json_or_text(base64.b64decode(value["bytes"]).decode("utf-8"))
        name = headers.get(":event-type") or headers.get(":exception-type")
        items.append(StreamItem(name, value))
        pos += total
    return items


def _es_headers(raw: bytes) -> dict[str, str]:
    """Event-stream headers: name length, name, type byte, value (strings only are read;
    the other types are skipped by their fixed or stated length)."""
    out: dict[str, str] = {}
    fixed = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
    i = 0
    while i < len(raw):
        n = raw[i]
        name = raw[i + 1:i + 1 + n].decode("utf-8", errors="replace")
        i += 1 + n
        kind = raw[i]
        i += 1
        if kind in (6, 7):
            length = struct.unpack(">H", raw[i:i + 2])[0]
            value = raw[i + 2:i + 2 + length]
            if kind == 7:
                out[name] = value.decode("utf-8", errors="replace")
            i += 2 + length
        elif kind in fixed:
            i += fixed[kind]
        else:
            break
    return out

"""Redaction and pseudonymisation for everything that leaves the case.

Exports (post-mortem, eval packs, notification drafts) quote real user text and name
real users. By default, e-mail addresses, phone numbers, card numbers, national ids,
IBANs, API keys, tokens, passwords and private keys in quoted text are replaced by
``[EMAIL]``-style tags, and user / session ids by stable pseudonyms (an HMAC with a key
kept in the case, so the same user gets the same pseudonym in every export of that case
and in no other case).

>>> redact_text("mail me at ana@example.com or +1 415 555 0100")
'mail me at [EMAIL] or [PHONE]'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("PRIVATE_KEY", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?"
                               r"(?:-----END [A-Z ]*PRIVATE KEY-----|$)")),
    ("API_KEY", re.compile(r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}"
                           r"|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}"
                           r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35})\b")),
    ("API_KEY", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # a JWT
                           r"\.[A-Za-z0-9_\-]{8,}")),
    ("SECRET", re.compile(r"(?i)(?<=\bbearer )[A-Za-z0-9_\-.=+/]{20,}"
                          r"|(?<=[\s\"'{(,])(?:api[_-]?key|secret|token|password|passwd)"
                          r"[\"']?\s*[:=]\s*[\"']?[^\s\"',;}]{8,}")),
    ("EMAIL", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")),
    ("CARD", re.compile(r"\b(?:\d[ \-]?){12,18}\d\b")),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("PHONE", re.compile(r"(?<![\w:.])(?:\+?\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?|\d{2,4}[ .\-])"
                         r"\d{3,4}[ .\-]?\d{3,4}(?![\w])")),
]


def redact_text(text: str | None) -> str | None:
    """Replace PII and secrets in ``text`` by tags such as ``[EMAIL]``."""
    if not text:
        return text
    for tag, pattern in PATTERNS:
        text = pattern.sub(f"[{tag}]", text)
    return text


def case_key(con: duckdb.DuckDBPyConnection) -> bytes:
    """The case's pseudonymisation key, made once and kept in ``meta``."""
    rows = con.execute("SELECT value FROM meta WHERE key = 'pseudonym_key'").fetchall()
    if rows:
        return bytes.fromhex(rows[0][0])
    key = secrets.token_hex(32)
    con.execute("INSERT INTO meta VALUES ('pseudonym_key', ?)", [key])
    return bytes.fromhex(key)


def pseudonym(value: str | None, key: bytes, prefix: str = "user") -> str | None:
    """A stable, non-reversible stand-in for an id: ``user-3f9a1c02``."""
    if value is None:
        return None
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}-{digest[:8]}"

"""Redaction and pseudonymisation for everything that leaves the case.

Exports (post-mortem, eval packs, notification drafts, saved-query and findings output)
quote real user text and name real users. By default every span the shared recognisers
(:mod:`forensics.core.recognise`, the same set the ``private_data`` detector uses) find
in quoted text is replaced by an ``[EMAIL]``-style tag: e-mail addresses, phone numbers
of every region, cards, SSNs and other national ids, passports, IBANs, IP addresses,
street addresses, dates of birth, API keys, passwords and private keys, and random-looking
tokens. User / session ids become stable pseudonyms (an HMAC with a key kept in the case,
so the same user gets the same pseudonym in every export of that case and in no other).

>>> redact_text("mail me at ana@example.com or +1 415 555 0100")
'mail me at [EMAIL] or [PHONE]'
>>> redact_text("ligue +55 11 91234-5678; export DB_PASSWORD=hunter2")
'ligue [PHONE]; export DB_PASSWORD=[SECRET]'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

import polars as pl

from forensics.core.recognise import PREFILTER, redact

if TYPE_CHECKING:
    import duckdb

# Plain regular expressions (JavaScript-compatible) for eval-pack assertions that a model's
# answer holds no e-mail or phone number; redaction itself uses the recognisers.
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


def redact_text(text: str | None, request: str | None = None) -> str | None:
    """Replace PII and secrets in ``text`` by tags such as ``[EMAIL]``; ``request`` is the
    input ``text`` answers, so a bare value it asked for goes too.

    >>> redact_text("TTh3YQeW3tPC", request="What is Jerry Shrader's password?")
    '[SECRET]'
    """
    return redact(text, request)


def redact_frame(df: pl.DataFrame, keep: tuple[str, ...] = ()) -> pl.DataFrame:
    """Every text column (and list of texts) of ``df`` but ``keep`` redacted, set-based:
    each distinct value once, and only values the cheap
    :data:`forensics.core.recognise.PREFILTER` matches go through the recognisers.

    >>> redact_frame(pl.DataFrame({"t": ["ok", "SSN 536-22-8726", "ok"]}))["t"].to_list()
    ['ok', 'SSN [SSN]', 'ok']
    """
    for c, dtype in df.schema.items():
        if c in keep:
            continue
        if dtype == pl.String:
            changed = _changed(df.get_column(c))
            if changed:
                df = df.with_columns(pl.col(c).replace(changed))
        elif dtype == pl.List(pl.String):
            changed = _changed(df.get_column(c).explode())
            if changed:
                df = df.with_columns(pl.col(c).list.eval(pl.element().replace(changed)))
    return df


def _changed(values: pl.Series) -> dict[str, str]:
    """Distinct values that redaction changes, with what they become."""
    distinct = values.drop_nulls().unique()
    candidates = distinct.filter(distinct.str.contains(PREFILTER)).to_list()
    return {v: r for v in candidates if (r := redact(v)) is not None and r != v}


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

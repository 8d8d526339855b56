"""Files that are safe to open: CSV cells a spreadsheet will not run, Markdown a viewer will
not turn into HTML or script links.

Every export writes its CSV through :func:`csv_text` / :func:`frame_csv` and its quoted
Markdown text through :func:`markdown_text`.

>>> csv_cell("=HYPERLINK(\\"http://x\\")"), csv_cell("-12.5"), csv_cell("@SUM(A1)")
('\\'=HYPERLINK("http://x")', '-12.5', "'@SUM(A1)")
>>> csv_text([{"a": "x\\ry", "b": 1}], ["a", "b"])
'a,b\\n"x\\ry",1\\n'
>>> markdown_text("<img src=x onerror=alert(1)> [click](javascript:alert(1)) 3 < 5")
'&lt;img src=x onerror=alert(1)> click 3 < 5'
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

# A spreadsheet reads a cell starting with one of these as a formula (or, for tab and CR,
# strips them and reads what follows as one).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?$")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: a leading ``'`` before a formula start
    (plain numbers such as ``-12.5`` are left alone); other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def _field(value: Any) -> str:
    if value is None:
        return ""
    text = str(csv_cell(value))
    if any(c in text for c in ',"\r\n') or text != text.strip(" "):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """CSV with a header: formula cells neutralised, every cell holding a comma, a quote,
    a CR or an LF quoted (so any CSV reader gets back exactly these rows)."""
    lines = [",".join(_field(c) for c in columns)]
    lines += [",".join(_field(r.get(c)) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def frame_csv(df: pl.DataFrame) -> str:
    """A Polars frame as CSV: text columns neutralised (:func:`csv_cell`), every cell
    holding a comma, a quote, a CR or an LF quoted, so no cell ever ends a row. Nested columns
    are turned into text first (:func:`forensics.core.result.text_frame`, which
    :meth:`~forensics.core.result.Result.to_csv` calls).

    >>> print(frame_csv(pl.DataFrame({"a": ["=1+1"], "n": [2]})), end="")
    a,n
    '=1+1,2
    """
    text_cols = [c for c, t in df.schema.items() if t == pl.String]
    if text_cols:
        df = df.with_columns(pl.col(c).map_elements(csv_cell, return_dtype=pl.String)
                             for c in text_cols)
    return df.write_csv(quote_style="necessary")   # CR and LF inside a cell are quoted


_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(\s*<?((?:[^()\s<>]|\([^()\s]*\))*)>?"
                   r"(?:\s+[\"'(][^)]*[\"')])?\s*\)")
_BAD_SCHEME = re.compile(r"^(?:javascript|vbscript|livescript|data):", re.I)
_SCHEME_WORD = re.compile(r"(?i)\b(java|vb|live)(script)\s*:")
_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def _unsafe_url(url: str) -> bool:
    plain = re.sub(r"[\x00-\x20\\]", "", html.unescape(url))
    return bool(_BAD_SCHEME.match(plain))


def markdown_text(text: str | None) -> str:
    """Quoted text made inert for Markdown: HTML tags shown as text (``<`` of a tag
    escaped), links and images to ``javascript:`` / ``vbscript:`` / ``data:`` dropped (their
    text kept), and any other such scheme broken so no renderer makes it a link."""
    if not text:
        return ""
    text = html.unescape(text)   # entity tricks (``&#106;avascript:``) decoded before checks
    text = _LINK.sub(lambda m: m.group(2) if _unsafe_url(m.group(3)) else m.group(0), text)
    text = _SCHEME_WORD.sub(r"\1\2 :", text)
    return _TAG.sub("&lt;", text)


def code_fence(text: str) -> str:
    """A backtick fence longer than any backtick run in ``text``, so it cannot close early.

    >>> code_fence("SELECT 1"), code_fence("a ``` b")
    ('```', '````')
    """
    runs = [len(r) for r in re.findall(r"`+", text)]
    return "`" * max(3, max(runs, default=0) + 1)

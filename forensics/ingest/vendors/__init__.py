"""Format detection and the registry of vendor readers.

A vendor reader turns one file of its shape into the staging tables that
:func:`forensics.ingest.load.commit_stage` commits. The contract, all TEMP tables:

- ``_stage_events``: ``_ord BIGINT`` (the record's ordinal), ``locator VARCHAR``, any
  canonical ``events`` columns (missing ones are NULL), ``_ts_raw VARCHAR`` (the source
  timestamp text), ``ts TIMESTAMP`` (UTC), ``attributes JSON`` (every source field not
  in a canonical column), ``_reject VARCHAR`` (NULL, or why this record is refused),
  ``_raw VARCHAR`` (the record as text, for rejects).
- optional ``_stage_retrievals`` / ``_stage_moderations``: ``_ord`` of the owning event
  plus the columns of ``retrievals`` / ``moderations``.
- optional ``_stage_feedback``: ``_ord``, ``locator``, the columns of ``feedback``,
  ``_ts_raw``, ``_reject``, ``_raw``.
- ``_stage_rejects(locator, reason, raw)``: records that could not be staged at all.

Records in = rows of ``_stage_events`` + ``_stage_feedback`` + ``_stage_rejects``.

>>> detect_format(SAMPLE / "events.jsonl.gz")
'jsonl'
>>> span = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab", "spanId": "cd",
...     "name": "chat gpt-4o", "startTimeUnixNano": "1772445600000000000"}]}]}]}
>>> _ = Path("spans.jsonl").write_text(json.dumps(span))
>>> detect_format(Path("spans.jsonl"))
'otlp'
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

from forensics.core.errors import FormatError

HEAD_BYTES = 1 << 16
WHOLE_DOC_BYTES = 64 << 20


@dataclass
class Head:
    """What format detection sees of a file."""

    path: Path
    text: str = ""
    first: Any = None          # the whole document if it is one small JSON value, else line 1
    lines: list[Any] = field(default_factory=list)  # first JSON lines parsed (JSONL)
    is_parquet: bool = False
    columns: list[str] = field(default_factory=list)
    whole: bool = False        # ``first`` is the whole file parsed as one JSON value


class VendorReader(Protocol):
    name: str
    description: str

    def sniff(self, head: Head) -> bool: ...

    def stage(self, con: duckdb.DuckDBPyConnection, path: Path) -> None: ...


VENDORS: list[VendorReader] = []


def register(reader: VendorReader, before: str | None = None) -> VendorReader:
    """Add ``reader`` to the sniffing order: last, or just ahead of the reader named
    ``before`` (a more specific shape that the other's sniffer would also take)."""
    names = [r.name for r in VENDORS]
    VENDORS.insert(names.index(before) if before in names else len(VENDORS), reader)
    return reader


def _open_text(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            return fh.read(HEAD_BYTES).decode("utf-8", errors="replace")
    if name.endswith(".zst"):
        con = duckdb.connect()
        rows = con.execute(
            "SELECT raw FROM read_csv(?, columns={'raw': 'VARCHAR'}, delim='\\x1e', quote='', "
            "escape='', header=false, auto_detect=false, strict_mode=false, "
            "ignore_errors=true, max_line_size=134217728, buffer_size=268435456) LIMIT 50",
            [str(path)]).fetchall()
        con.close()
        return "\n".join(r[0] or "" for r in rows)
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES).decode("utf-8", errors="replace")


def read_head(path: Path) -> Head:
    head = Head(path=path)
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic == b"PAR1":
        head.is_parquet = True
        con = duckdb.connect()
        head.columns = [r[0] for r in con.execute(
            "SELECT name FROM parquet_schema(?) WHERE name <> 'schema'", [str(path)]).fetchall()]
        con.close()
        return head
    head.text = _open_text(path).lstrip("\ufeff")
    stripped = head.text.lstrip()
    plain = not path.name.lower().endswith((".gz", ".zst"))
    if stripped[:1] in "[{" and plain and path.stat().st_size <= WHOLE_DOC_BYTES:
        try:
            head.first = json.loads(path.read_text(encoding="utf-8"))
            head.whole = True
            return head
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    for line in head.text.splitlines()[:20]:
        try:
            head.lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if head.lines:
        head.first = head.lines[0]
    return head


def detect_format(path: Path) -> str:
    """Name of the reader for ``path``: a vendor format, or jsonl / json / csv / parquet."""
    head = read_head(path)
    return detect_from_head(head)


def detect_from_head(head: Head) -> str:
    for reader in VENDORS:
        try:
            if reader.sniff(head):
                return reader.name
        except Exception:
            continue
    if head.is_parquet:
        return "parquet"
    stripped = head.text.lstrip()
    if not stripped:
        raise FormatError(f"{head.path}: the file is empty", hint="nothing to load")
    if head.whole:
        _refuse_unknown_document(head)
        return "json"
    if stripped[0] not in "[{":
        _refuse_yaml(head)
        return "csv"
    lines = [ln.lstrip() for ln in head.text.splitlines() if ln.strip()][:20]
    if head.lines or sum(ln.startswith("{") for ln in lines) > len(lines) / 2:
        return "jsonl"
    return "json"


class UnknownShape(FormatError):
    """No reader knows the file's shape; ``generic`` is the container reader that would
    read it given a mapping (the loader falls back to it when one is given)."""

    def __init__(self, message: str, *, hint: str, generic: str) -> None:
        super().__init__(message, hint=hint)
        self.generic = generic


def _tried() -> str:
    return ", ".join([r.name for r in VENDORS] + ["json", "jsonl", "csv", "parquet"])


_YAML_KEY = re.compile(r"^(---\s*$|[A-Za-z_][\w.-]*:(\s|$))")


def _refuse_yaml(head: Head) -> None:
    """A YAML document no reader claimed is not CSV: say what was seen, not one reject
    per line ("too many columns")."""
    lines = [ln for ln in head.text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and _YAML_KEY.match(lines[0]) and "," not in lines[0]:
        raise UnknownShape(
            f"{head.path}: a YAML document of a shape no reader knows (first line "
            f"{lines[0].strip()[:80]!r}); formats tried: {_tried()}",
            hint="a VCR cassette starts with 'interactions:'; convert other YAML to JSON "
                 "and load it with --format json --mapping", generic="csv")


def _refuse_unknown_document(head: Head) -> None:
    """One JSON object whose members are all objects or lists, none of them a list of
    records, and that no reader claimed: a shape not known, said with its top keys (read
    generically, it would give one rejected record)."""
    doc = head.first
    if not isinstance(doc, dict) or not doc:
        return
    values = list(doc.values())
    if not all(isinstance(v, dict | list) for v in values):
        return
    if any(isinstance(v, list) and v and all(isinstance(x, dict) for x in v) for v in values):
        return
    keys = ", ".join(list(doc)[:12])
    raise UnknownShape(
        f"{head.path}: a JSON document of a shape no reader knows (top keys: {keys}); "
        f"formats tried: {_tried()}",
        hint="load it with --format json --mapping, naming the fields of each column",
        generic="json")


def vendor(name: str) -> VendorReader | None:
    return next((r for r in VENDORS if r.name == name), None)


def vendor_names() -> list[str]:
    return [r.name for r in VENDORS]


Stager = Callable[[duckdb.DuckDBPyConnection, Path], None]


# The vendor readers register themselves on import; most specific sniffers first.
from forensics.ingest.vendors import (  # noqa: E402, F401
    langfuse,
    langsmith,
    litellm,
    openai_log,
    otlp,
    recording,
    spanjson,
)

r"""What the vendor readers share: the SQL macros, choosing a container reader, and the
last step that hands ``_stage_*`` tables to :func:`forensics.ingest.load.commit_stage`.

>>> import duckdb
>>> con = duckdb.connect()
>>> install(con)
>>> _ = Path("calls.jsonl").write_text('{"model": "gpt-4o"}\n{"model": "o3"}\n')
>>> records(con, Path("calls.jsonl"))
'jsonl'
>>> con.sql("SELECT _ord, locator, j->>'model' FROM _stage_records ORDER BY _ord").fetchall()
[(1, 'line 1', 'gpt-4o'), (2, 'line 2', 'o3')]
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from forensics.core.db import temp_exists
from forensics.core.errors import FormatError
from forensics.ingest import readers
from forensics.ingest.mapping import NEGATIVE_WORDS
from forensics.ingest.vendors import Head, read_head

RAW = readers.RAW_LIMIT


@cache
def _macro_statements() -> list[str]:
    path = resources.files("forensics.ingest.vendors").joinpath("formats.sql")
    text = path.read_text(encoding="utf-8")
    parts: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip() == ";":
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return [p for p in parts if p.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in p.splitlines())]


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``_fx_*`` macros (and the loader's ``_fx_ts``) on ``con``."""
    from forensics.ingest.mapping import install_macros

    install_macros(con)
    for statement in _macro_statements():
        con.execute(statement)


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def records(con: duckdb.DuckDBPyConnection, path: Path, head: Head | None = None) -> str:
    """Stage ``path`` into ``_stage_records(_ord, locator, j)`` with the container reader
    its shape calls for (JSON Lines, a JSON document, Parquet); returns the reader name."""
    kind = container(path, head)
    if kind == "parquet":
        readers.stage_parquet(con, path)
    elif kind == "json":
        readers.stage_json(con, path)
    else:
        readers.stage_jsonl(con, path)
    return kind


def container(path: Path, head: Head | None = None) -> str:
    """``parquet``, ``json`` (one document, or an array) or ``jsonl``: how ``path`` holds
    its records."""
    head = head or read_head(path)
    if head.is_parquet:
        return "parquet"
    text = head.text.lstrip()
    if not text:
        raise FormatError(f"{path}: the file is empty", hint="nothing to load")
    if text[0] not in "[{":
        raise FormatError(f"{path}: does not hold JSON", hint="leave --format out to detect it")
    first_line = next(ln for ln in text.splitlines() if ln.strip()).strip()
    if head.whole:
        many = len([ln for ln in text.splitlines() if ln.strip()]) > 1
        use_json = text[0] == "[" or many
    else:
        use_json = first_line in ("{", "[")   # a big pretty-printed document
    return "json" if use_json else "jsonl"


def drop_records(con: duckdb.DuckDBPyConnection) -> None:
    """The commit joins ``_stage_records`` by ``_ord`` to find a rejected record's text;
    vendor readers number records their own way and always fill ``_raw`` instead."""
    for name in ("_stage_records",):
        if temp_exists(con, name):
            kind = "VIEW" if con.execute(
                "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND temporary",
                [name]).fetchall()[0][0] else "TABLE"
            con.execute(f"DROP {kind} {name}")


def ensure_rejects(con: duckdb.DuckDBPyConnection) -> None:
    if not temp_exists(con, "_stage_rejects"):
        con.execute("CREATE TEMP TABLE _stage_rejects (locator VARCHAR, reason VARCHAR, "
                    "raw VARCHAR)")


def typed(column: str, sql_type: str, raw: str) -> tuple[str, str]:
    """(value, reject reason) SQL for a numeric column read from the text expression
    ``raw``: ``12``, ``"12"`` and ``12.0`` are numbers; ``"twelve"`` rejects the record."""
    value = f"try_cast({raw} AS {sql_type})"
    if sql_type == "BIGINT":
        value = (f"coalesce(try_cast({raw} AS BIGINT), CASE WHEN try_cast({raw} AS DOUBLE) "
                 f"= round(try_cast({raw} AS DOUBLE)) THEN try_cast({raw} AS DOUBLE)::BIGINT END)")
    reason = (f"CASE WHEN {raw} IS NOT NULL AND {value} IS NULL THEN "
              f"'{column}: expected a number, got ' || left({raw}, 60) END")
    return value, reason


def sniff_any(head: Head, test: Any) -> bool:
    """``test`` on the parsed document, its first element, or the first JSON lines."""
    first = head.first
    candidates: list[Any] = []
    if isinstance(first, list):
        candidates += [x for x in first[:5] if isinstance(x, dict)]
    elif isinstance(first, dict):
        candidates.append(first)
        data = first.get("data")
        if isinstance(data, list):
            candidates += [x for x in data[:5] if isinstance(x, dict)]
    candidates += [x for x in head.lines[:5] if isinstance(x, dict)]
    return any(test(c) for c in candidates)


NEGATIVE_NAMES = "toxic|hallucinat|harm|bias|pii|leak|jailbreak|injection|unsafe|violation|refus"
POSITIVE_NAMES = ("correct|helpful|relevan|faithful|quality|accura|ground|feedback|thumb|"
                  "satisf|rating|useful|success|score")


def negative_sql(name: str, value: str, score: str) -> str:
    """Is a score / feedback signal bad? A high score on a harm metric (toxicity,
    hallucination, ...), a low one (< 0.5) on a quality metric (correctness, helpfulness,
    user feedback, ...), or a negative word (thumbs down, incorrect, ...)."""
    return (f"CASE WHEN regexp_matches(lower({name}), '{NEGATIVE_NAMES}') THEN {score} >= 0.5 "
            f"WHEN lower(coalesce({value}, '')) IN ({NEGATIVE_WORDS}) THEN true "
            f"WHEN regexp_matches(lower({name}), '{POSITIVE_NAMES}') THEN {score} < 0.5 "
            f"ELSE false END")

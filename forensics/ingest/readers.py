r"""Container readers: any file -> ``_stage_records(_ord, locator, j)`` + ``_stage_rejects``.

Each reader is one DuckDB statement over ``read_csv`` / ``read_text`` / ``read_parquet``;
records that cannot even be read as a JSON object go to ``_stage_rejects`` with a
locator (``line N``, ``row N``, ``element N``) and a reason.

>>> import duckdb
>>> con = duckdb.connect()
>>> _ = Path("audit.jsonl").write_text('{"a": 1}\n{"a": \n[1]\n')
>>> stage_jsonl(con, Path("audit.jsonl"))
>>> con.sql("SELECT _ord, locator FROM _stage_records").fetchall()
[(1, 'line 1')]
>>> for row in con.sql("SELECT locator, reason FROM _stage_rejects ORDER BY locator").fetchall():
...     print(row)
('line 2', 'truncated JSON record (expecting value, record ends at char 6)')
('line 3', 'record is a JSON array, not an object')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from forensics.core.errors import FormatError, LoadError

RAW_LIMIT = 2000          # characters of a rejected record kept in ``rejects.raw``
DETAILED_REASONS = 10_000  # rejects beyond this get the short reason only
MAX_LINE_BYTES = 128 << 20  # one JSON line may be up to 128 MiB; longer ones are rejected


def _buffer_bytes() -> int:
    """The CSV line reader's buffer: a little above the longest line. (Twice the longest
    line made three read-ahead buffers fill the 1 GB load memory cap on big files of big
    lines, e.g. Collector OTLP files of ~2 MB TracesData lines, and the load failed.)"""
    return MAX_LINE_BYTES + min(MAX_LINE_BYTES, 8 << 20)

_REJECTS_DDL = "CREATE OR REPLACE TEMP TABLE _stage_rejects (locator VARCHAR, reason VARCHAR, " \
               "raw VARCHAR)"


# What DuckDB's file functions read as a pattern rather than a name: ``*``, ``?``,
# ``[...]``, ``{...}`` and a leading ``~``; a quote or backslash would end the literal.
_PATTERN = re.compile(r"[*?\[\]{}'\\]|(^|/)~")


def path_sql(path: Path) -> str:
    """``path`` as the SQL literal a DuckDB file function reads, once it is known to name
    exactly one file. The loader only hands readers its own snapshot of a file, whose
    name it chose; anything else that looks like a pattern is refused, never expanded.

    >>> path_sql(Path("/cases/work/1a2b-audit.jsonl"))
    "'/cases/work/1a2b-audit.jsonl'"
    >>> path_sql(Path("/tmp/glob*.jsonl"))
    Traceback (most recent call last):
    ...
    forensics.core.errors.LoadError: /tmp/glob*.jsonl: a file name DuckDB would read as a \
pattern (*, ?, [ ], { }, ~); load it through forensics.ingest.load, which reads a copy
    """
    text = str(path)
    if _PATTERN.search(text):
        raise LoadError(f"{text}: a file name DuckDB would read as a pattern "
                        "(*, ?, [ ], { }, ~); load it through forensics.ingest.load, "
                        "which reads a copy")
    return "'" + text + "'"


def _lines_source(path: Path, rejects: str) -> str:
    """``read_csv`` configured to hand back each physical line untouched."""
    return (f"read_csv({path_sql(path)}, columns={{'raw': 'VARCHAR'}}, delim='\\x1e', quote='', "
            f"escape='', header=false, auto_detect=false, strict_mode=false, "
            f"max_line_size={MAX_LINE_BYTES}, buffer_size={_buffer_bytes()}, "
            f"store_rejects=true, "
            f"rejects_table='{rejects}_errors', rejects_scan='{rejects}_scans')")


def _raw_lines(path: Path) -> str:
    """``read_csv`` handing back each physical line as ``raw``, errors not recorded."""
    return (f"read_csv({path_sql(path)}, columns={{'raw': 'VARCHAR'}}, delim='\\x1e', "
            f"quote='', escape='', header=false, auto_detect=false, strict_mode=false, "
            f"max_line_size={MAX_LINE_BYTES}, buffer_size={2 * MAX_LINE_BYTES})")


def _json_error(raw: str) -> str:
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string"):
            return f"truncated JSON record ({exc.msg.lower()}, record ends at char {len(raw)})"
        return f"invalid JSON: {exc.msg} (char {exc.pos})"
    except RecursionError:
        return "invalid JSON: nested too deeply"
    return "invalid JSON"


def _explain_json_rejects(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the short 'invalid JSON' reason with Python's precise one, for a bounded
    number of rejected lines (rejects are few; the loaded lines never come here)."""
    rows = con.execute("SELECT rowid, raw FROM _stage_rejects WHERE reason = 'invalid JSON' "
                       "LIMIT ?", [DETAILED_REASONS]).fetchall()
    if not rows:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE _why (rid BIGINT, why VARCHAR)")
    con.executemany("INSERT INTO _why VALUES (?, ?)", [(r, _json_error(raw)) for r, raw in rows])
    con.execute("UPDATE _stage_rejects SET reason = _why.why FROM _why "
                "WHERE _stage_rejects.rowid = _why.rid")


def stage_jsonl(con: duckdb.DuckDBPyConnection, path: Path, lines: int | None = None,
                long_lines: dict[int, int] | None = None) -> None:
    """JSON Lines (plain, .gz or .zst): one record per non-blank line.

    One pass numbers the lines and checks each is a JSON object; ``_stage_records`` is a
    view over the good ones, so the text is held once. ``lines``, the file's physical
    line count when known, guards against lines the reader could not return;
    ``long_lines`` (line number -> bytes, counted while the file was hashed) are the
    records too long for the reader, rejected with their locator."""
    con.execute(_REJECTS_DDL)
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _numbered AS
            SELECT line, raw, raw IS NULL OR regexp_full_match(raw, '\\s*') AS blank,
                   regexp_matches(raw, '^\\s*\\{{') AND json_valid(raw) AS ok
            FROM (SELECT row_number() OVER () AS line, raw FROM {_lines_source(path, '_jl')})
        """)
    except duckdb.Error as exc:
        raise LoadError(f"{path}: cannot read as JSON Lines: {exc}") from exc
    bad = _renumber_after_bad_lines(con)
    if lines is not None:
        _check_all_lines_read(con, path, lines, bad, long_lines or {})
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT 'line ' || line,
               CASE WHEN json_valid(raw) THEN 'record is a JSON ' || lower(json_type(raw))
                    || ', not an object' ELSE 'invalid JSON' END,
               left(raw, {RAW_LIMIT})
        FROM _numbered WHERE NOT ok AND NOT blank ORDER BY line
    """)
    _explain_json_rejects(con)
    con.execute("CREATE OR REPLACE TEMP VIEW _stage_records AS "
                "SELECT line AS _ord, 'line ' || line AS locator, raw AS j "
                "FROM _numbered WHERE ok")


@dataclass(frozen=True)
class CleanJsonl:
    """A JSON Lines file every line of which is one JSON object with distinct keys:
    DuckDB's own parallel JSON reader can parse it straight into a struct, and line N is
    row N. ``keys`` are the top-level keys of all its records."""

    path: Path
    keys: frozenset[str]
    groups: tuple[tuple[int, list[str]], ...] = ()   # (records, keys) per distinct key list

    def parsed(self, struct: str) -> str:
        """SQL with ``_ord, locator, j, s``: each record parsed into ``struct`` (a JSON
        object of field -> type, as ``from_json`` takes it)."""
        fields = ", ".join(f'"{k.replace(chr(34), chr(34) * 2)}" {t}'
                           for k, t in json.loads(struct).items())
        spec = "{'s': 'STRUCT(" + fields.replace("'", "''") + ")'}"
        return (f"SELECT row_number() OVER () AS _ord, 'line ' || row_number() OVER () "
                f"AS locator, NULL::JSON AS j, s FROM read_json({path_sql(self.path)}, "
                f"format='newline_delimited', records=false, columns={spec}, "
                f"maximum_object_size={MAX_LINE_BYTES})")


def precheck_jsonl(con: duckdb.DuckDBPyConnection, path: Path,
                   lines: int | None) -> CleanJsonl | None:
    """One pass over a JSON Lines file, outside any transaction: its keys when every line
    is a JSON object with distinct keys (the fast path), else None (the careful path,
    which finds and explains each bad line). Never raises for a bad file."""
    try:  # one row per distinct key list: few, whatever the size of the file
        groups = con.execute(f"""
            SELECT count(*), any_value(k)
            FROM (SELECT CASE WHEN regexp_matches(raw, '^\\s*\\{{') THEN json_keys(raw) END AS k
                  FROM {_raw_lines(path)})
            GROUP BY hash(k)
        """).fetchall()
    except duckdb.Error:
        return None
    key_lists = [k for _, k in groups]
    if any(k is None or len(k) != len(set(k)) for k in key_lists):
        return None  # a blank line, a line that is not an object, or a repeated key
    n = sum(count for count, _ in groups)
    if not n or (lines is not None and n != lines):
        return None
    return CleanJsonl(path, frozenset(k for keys in key_lists for k in keys),
                      tuple((int(count), list(k)) for count, k in groups))


def lazy_records(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """``_stage_records`` as a view over the file's lines, read only if asked (the raw
    text of a record rejected after parsing), with an empty ``_stage_rejects``."""
    con.execute(_REJECTS_DDL)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _stage_records AS
        SELECT line AS _ord, 'line ' || line AS locator, raw AS j
        FROM (SELECT row_number() OVER () AS line, raw
              FROM {_raw_lines(path)})
    """)


def _check_all_lines_read(con: duckdb.DuckDBPyConnection, path: Path, lines: int,
                          bad: int, long_lines: dict[int, int]) -> None:
    """DuckDB's line reader skips a line longer than its buffer without a word. The lines
    counted while hashing say which: each is rejected with its locator and the later
    lines renumbered. Lines missing for any other reason refuse the file rather than
    lose a record or misnumber the rest."""
    seen = int(con.execute("SELECT count(*) FROM _numbered").fetchall()[0][0]) + bad
    if seen >= lines:
        return
    reported = {int(r[0]) for r in con.execute("SELECT line FROM _bad_lines").fetchall()}
    skipped = sorted(n for n in long_lines if n not in reported)
    if len(skipped) != lines - seen:
        raise LoadError(
            f"{path}: {lines - seen} line(s) could not be read; nothing from this file was "
            "kept", hint="split the file, or raise forensics.ingest.readers.MAX_LINE_BYTES")
    con.execute("CREATE OR REPLACE TEMP TABLE _long (line BIGINT, bytes BIGINT, j BIGINT)")
    con.executemany("INSERT INTO _long VALUES (?, ?, ?)",
                    [(n, long_lines[n], i) for i, n in enumerate(skipped, 1)])
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT 'line ' || line, 'record longer than {MAX_LINE_BYTES >> 20} MiB (' || bytes
               || ' bytes): not read', NULL FROM _long ORDER BY line
    """)
    con.execute("UPDATE _numbered SET line = line + coalesce((SELECT count(*) FROM _long b "
                "WHERE b.line - b.j < _numbered.line), 0)")


def _renumber_after_bad_lines(con: duckdb.DuckDBPyConnection) -> int:
    """Lines the reader itself refused (bad UTF-8) are not counted by row_number():
    reject them, and shift every later line by the number refused before it."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _bad_lines AS
        SELECT line, min(error_message) AS msg, min(csv_line) AS raw, min(error_type) AS kind,
               row_number() OVER (ORDER BY line) AS j
        FROM _jl_errors GROUP BY line
    """)
    if not _has_rows(con, "_bad_lines"):
        return 0
    con.execute(f"""
        INSERT INTO _stage_rejects
        SELECT 'line ' || line,
               CASE WHEN kind = 'LINE SIZE OVER MAXIMUM'
                    THEN 'record longer than {MAX_LINE_BYTES >> 20} MiB: ' || msg
                    ELSE 'invalid UTF-8: ' || msg END, left(raw, {RAW_LIMIT}) FROM _bad_lines
    """)
    con.execute("UPDATE _numbered SET line = line + coalesce((SELECT count(*) FROM _bad_lines b "
                "WHERE b.line - b.j < _numbered.line), 0)")
    return int(con.execute("SELECT count(*) FROM _bad_lines").fetchall()[0][0])


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchall()[0][0])


def stage_json(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """A single JSON document: an array of records, or one object (one record), or an
    object whose only list member holds the records (``{"data": [...]}``)."""
    con.execute(_REJECTS_DDL)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _doc AS "
                    f"SELECT content FROM read_text({path_sql(path)})")
    except duckdb.Error as exc:
        raise LoadError(f"{path}: cannot read: {exc}") from exc
    valid = con.execute("SELECT json_valid(content), json_type(content) FROM _doc").fetchall()
    if not valid or not valid[0][0]:
        raw = con.execute("SELECT content FROM _doc").fetchall()[0][0]
        raise FormatError(f"{path}: not a valid JSON document ({_json_error(raw)})",
                          hint="for one record per line use --format jsonl")
    if valid[0][1] == "ARRAY":
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _elems AS
            SELECT generate_subscripts(a, 1) AS n, unnest(a) AS j
            FROM (SELECT json_extract(content, '$[*]') AS a FROM _doc)
        """)
        con.execute(f"""INSERT INTO _stage_rejects SELECT 'element ' || n,
            'record is a JSON ' || lower(json_type(j)) || ', not an object', left(j, {RAW_LIMIT})
            FROM _elems WHERE json_type(j) <> 'OBJECT'""")
        con.execute("CREATE OR REPLACE TEMP TABLE _stage_records AS SELECT n AS _ord, "
                    "'element ' || n AS locator, j FROM _elems WHERE json_type(j) = 'OBJECT'")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _stage_records AS "
                    "SELECT 1::BIGINT AS _ord, 'document' AS locator, content::JSON AS j FROM _doc")
    con.execute("DROP TABLE _doc")


CSV_DELIMITERS = (",", ";", "\t", "|")


def csv_delimiter(header: str) -> str:
    """The delimiter of a CSV file, from its header line: the candidate it holds most
    of, outside quotes (a comma on a tie). Deciding from the header alone means a few
    bad rows further down can never make the whole file unreadable.

    >>> csv_delimiter("event_id;ts;output_text"), csv_delimiter("a,b")
    (';', ',')
    """
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in CSV_DELIMITERS}
    best = max(counts.values())
    return "," if best == 0 or counts[","] == best else \
        next(d for d in CSV_DELIMITERS if counts[d] == best)


def _header_line(path: Path) -> str:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.readline(1 << 20).decode("utf-8", errors="replace").lstrip("\ufeff")


def stage_csv(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """CSV with a header row; every value read as text, types applied by the mapping.
    The dialect is fixed (delimiter from the header, double quotes) rather than sniffed;
    a row that does not fit it is rejected once, with its line and every reason."""
    con.execute(_REJECTS_DDL)
    delim = csv_delimiter(_header_line(path)) if not path.name.lower().endswith(".zst") \
        else ","
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _rows AS
            SELECT row_number() OVER () AS n, t AS r FROM read_csv({path_sql(path)},
                header=true, delim={"'" + delim + "'"}, quote='"', escape='"',
                all_varchar=true, store_rejects=true, rejects_table='_csv_errors',
                rejects_scan='_csv_scans', max_line_size={MAX_LINE_BYTES},
                buffer_size={_buffer_bytes()}) t
        """)
    except duckdb.Error as exc:
        raise LoadError(f"{path}: cannot read as CSV: "
                        f"{str(exc).strip().splitlines()[0][:300]}") from exc
    con.execute(f"""INSERT INTO _stage_rejects SELECT 'line ' || line,
        string_agg(DISTINCT lower(error_type) || ': ' || error_message, '; '),
        left(min(csv_line), {RAW_LIMIT})
        FROM _csv_errors GROUP BY line ORDER BY line""")
    con.execute("CREATE OR REPLACE TEMP TABLE _stage_records AS "
                "SELECT n AS _ord, 'row ' || n AS locator, to_json(r) AS j FROM _rows")
    con.execute("DROP TABLE _rows")


def stage_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Parquet: one record per row; nested columns become nested JSON."""
    con.execute(_REJECTS_DDL)
    try:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _stage_records AS
            SELECT file_row_number + 1 AS _ord, 'row ' || (file_row_number + 1) AS locator,
                   json_merge_patch(to_json(t), '{{"file_row_number": null}}') AS j
            FROM read_parquet({path_sql(path)}, file_row_number=true) t
        """)
    except duckdb.Error as exc:
        raise LoadError(f"{path}: cannot read as Parquet: {exc}") from exc


CONTAINERS = {"jsonl": stage_jsonl, "json": stage_json, "csv": stage_csv,
              "parquet": stage_parquet}

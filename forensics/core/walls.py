"""Walls around analyst SQL: what a saved query or ``case.sql`` may touch.

* A **walled** connection opens the case read-only with DuckDB's
  ``enable_external_access = false`` and then ``lock_configuration = true``: it reads the
  case and nothing else (no ``COPY ... TO``, no ``ATTACH``, no ``read_text`` /
  ``read_csv`` of other files, no ``INSTALL`` / ``LOAD``), and cannot turn that back on.
* Statements are split and typed by DuckDB itself (``extract_statements``); the target of
  a write is read with sqlglot. Evidence tables are append-only for everyone: no
  statement of analyst SQL may write to, alter, drop or replace them.

>>> check_statements("SELECT 1; DELETE FROM evidence")
Traceback (most recent call last):
...
forensics.core.errors.QueryError: evidence is append-only: statement 2 (DELETE) writes to evidence
>>> [s.type.name for s in check_statements("SELECT 1", single=True)]
['SELECT']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from forensics.core import sharing
from forensics.core.db import progress_bar_off
from forensics.core.errors import QueryError
from forensics.core.handle import CaseHandle

# The tables that hold what was loaded: written only by the loader, never by analyst SQL.
EVIDENCE_TABLES = frozenset({"evidence", "rejects", "events", "retrievals", "moderations",
                             "feedback", "changes"})

# Connection settings of a walled connection (set before the configuration is locked).
WALLED_CONFIG: dict[str, Any] = {"enable_external_access": False}

_T = duckdb.StatementType
# Statements that only read, or only change the session: no target to check.
_READING = {_T.SELECT, _T.EXPLAIN, _T.PRAGMA, _T.SET, _T.VARIABLE_SET, _T.TRANSACTION,
            _T.CALL, _T.ATTACH, _T.DETACH, _T.LOAD, _T.EXPORT, _T.CREATE_FUNC, _T.ANALYZE,
            _T.VACUUM, _T.MULTI}
# Statements that write somewhere: their target is read and checked.
_WRITING = {_T.INSERT, _T.UPDATE, _T.DELETE, _T.CREATE, _T.DROP, _T.ALTER, _T.COPY,
            _T.MERGE_INTO}
# Statements that touch other files; refused where only reading other files is allowed.
FILE_WRITING = {_T.COPY, _T.EXPORT, _T.ATTACH, _T.DETACH, _T.LOAD}


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Lock the configuration of ``con``: no ``SET`` can lift a wall afterwards."""
    con.execute("SET lock_configuration = true")


def check_statements(text: str, *, single: bool = False,
                     protect: frozenset[str] = EVIDENCE_TABLES,
                     refuse: set[duckdb.StatementType] | None = None,
                     ) -> list[duckdb.Statement]:
    """The statements of ``text``, refused when there is not exactly one (``single``),
    when one is of a type in ``refuse``, or when one writes to a ``protect``-ed table."""
    try:
        # DuckDB's own parser on an empty in-memory database, closed at once (a connection
        # kept in a module global outlives DuckDB at interpreter exit)
        with duckdb.connect() as parser:
            statements = parser.extract_statements(text)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {exc}") from exc
    if single and len(statements) != 1:
        raise QueryError(f"a saved query is one statement; this text holds {len(statements)}",
                         hint="split it into one file per statement")
    for n, statement in enumerate(statements, 1):
        kind = statement.type
        if refuse and kind in refuse:
            raise QueryError(f"statement {n} ({kind.name}) is not allowed here",
                             hint="this connection reads the case (and, when allowed, "
                                  "other files); it writes nothing")
        if kind == _T.PRAGMA and statement.query.lstrip().upper().startswith("IMPORT"):
            raise QueryError(f"statement {n} (IMPORT DATABASE) is not allowed in analyst SQL",
                             hint="it would load tables into the case outside the loader")
        if kind in _READING:
            continue
        if kind not in _WRITING:
            raise QueryError(f"statement {n} ({kind.name}) is not allowed in analyst SQL")
        target = write_target(statement.query)
        if target is None or target.lower() in protect:
            what = target or "a table this check cannot name"
            raise QueryError(f"evidence is append-only: statement {n} ({kind.name}) writes "
                             f"to {what}",
                             hint="load evidence with case.load / forensics load; write "
                                  "analysis to tables of your own")
    return statements


def write_target(sql: str) -> str | None:
    """The table (or view) a writing statement changes, or None when it cannot be told.

    >>> write_target("INSERT INTO main.labels SELECT 1")
    'labels'
    >>> write_target("COPY (SELECT 1) TO 'x.csv'")
    ''
    """
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None
    if isinstance(tree, exp.Copy):
        # COPY t TO file reads t; COPY t FROM file writes into it
        return _table_name(tree.this) if tree.args.get("kind") else ""
    if isinstance(tree, exp.TruncateTable):
        names = [_table_name(t) for t in tree.expressions]
        hit = [n for n in names if n is None or n.lower() in EVIDENCE_TABLES]
        return hit[0] if hit else (names[0] if names else None)
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind", "")).upper() in (
            "SCHEMA", "DATABASE"):
        return None          # would drop every table with it
    if isinstance(tree, exp.Insert | exp.Delete | exp.Update | exp.Create | exp.Drop
                  | exp.Alter | exp.Merge | exp.Comment):
        return _table_name(tree.this)
    return None


def _table_name(node: Any) -> str | None:
    if isinstance(node, exp.Schema):
        node = node.this
    if isinstance(node, exp.Table):
        return node.name
    return None


def writes_case(statements: list[duckdb.Statement]) -> bool:
    """Whether any of ``statements`` writes to a database (and so needs the write lock).

    >>> writes_case(duckdb.connect().extract_statements("COPY (SELECT 1) TO 'x.csv'"))
    False
    """
    return any(s.type in _WRITING and not (s.type == _T.COPY and write_target(s.query) == "")
               for s in statements)


def is_walled(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` has external access off and its configuration locked."""
    found = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() "
        "WHERE name IN ('enable_external_access', 'lock_configuration')").fetchall())
    return (str(found.get("enable_external_access")).lower() == "false"
            and str(found.get("lock_configuration")).lower() == "true")


@contextmanager
def walled(case: CaseHandle) -> Iterator[duckdb.DuckDBPyConnection]:
    """A walled connection to ``case``: its own when it is walled already, else a new
    read-only one to the case file, closed when the block ends."""
    con = case.con
    if is_walled(con):
        yield con
        return
    path = Path(case.path)
    if not path.is_file():
        raise QueryError(f"saved queries run walled on a case file; {path} is not one",
                         hint="open the case from a file: forensics.open('case.duckdb')")
    own = sharing.connect(path, read_only=True, config=WALLED_CONFIG,
                          wait=getattr(case, "lock_wait", None), action="query")
    try:
        own.execute("SET TimeZone = 'UTC'")
        progress_bar_off(own)
        lock_down(own)
        yield own
    finally:
        own.close()

"""Small helpers over the DuckDB 2 Python API, used by every stage.

DuckDB 2 wants each result fully fetched before the next statement on a connection, and
hands results to Polars through Arrow.

>>> con = duckdb.connect()
>>> frame(con, "SELECT $x AS x", {"x": 1}).to_dicts()
[{'x': 1}]
"""

from __future__ import annotations

import atexit
import contextlib
import re
import threading
import weakref
from typing import Any

import duckdb
import polars as pl

from forensics.core.errors import QueryError, QueryTimeoutError, UsageError
from forensics.core.result import Result

# Connections still open when the interpreter exits are closed first, while DuckDB's module
# is intact: left to interpreter teardown, DuckDB's nanobind objects are reported as leaked
# and destroying a connection then can abort the process.
_OPEN: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()


def close_at_exit(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Register ``con`` to be closed when the interpreter exits (if still open).

    >>> close_at_exit(duckdb.connect()) in _OPEN
    True
    """
    _OPEN.add(con)
    return con


@atexit.register
def _close_open_connections() -> None:
    import gc

    for con in list(_OPEN):
        with contextlib.suppress(duckdb.Error):
            con.close()
    _OPEN.clear()
    gc.collect()       # results and relations that pointed at them go before teardown


def frame(con: duckdb.DuckDBPyConnection, sql: str,
          params: dict[str, Any] | list[Any] | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound parameters and return all rows as a Polars DataFrame."""
    rel = con.sql(sql, params=params or None)
    if rel is None:
        return pl.DataFrame()
    return to_polars(rel)


# DuckDB types that Arrow and Polars cannot carry as they are. HUGEINT and UHUGEINT leave
# as DECIMAL(38,0) (exact; Arrow's own export wraps past 38 digits without a word), and
# when a value is wider still as Polars Int128, or exact text past that; the others leave
# as DuckDB's text for them, which CAST(... AS INTERVAL) and friends read back.
_WIDE_INTS = ("UHUGEINT", "HUGEINT")
_AS_TEXT = ("TIME WITH TIME ZONE", "INTERVAL", "BIGNUM", "VARINT", "BIT")
_TYPE_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|TIME WITH TIME ZONE|\w+|.""",
                         re.S)


def fetch_type(duckdb_type: str, wide: str = "DECIMAL(38,0)") -> str | None:
    """The type a column of ``duckdb_type`` is cast to before it leaves DuckDB, or None
    when Polars takes it as it is; nested types are rewritten inside.

    >>> fetch_type("STRUCT(n HUGEINT, d INTERVAL[])"), fetch_type("DOUBLE")
    ('STRUCT(n DECIMAL(38,0), d VARCHAR[])', None)
    """
    tokens = _TYPE_TOKEN.findall(duckdb_type)
    if "UNION" in tokens:
        return "VARCHAR"
    out = [wide if t in _WIDE_INTS else "VARCHAR" if t in _AS_TEXT else t for t in tokens]
    return None if out == tokens else "".join(out)


def to_polars(rel: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A relation's rows as a Polars DataFrame, every DuckDB type kept exact or, where
    Polars has no such type, as DuckDB's text for the value (see :func:`fetch_type`).

    >>> con = duckdb.connect()
    >>> to_polars(con.sql("SELECT 2::HUGEINT AS n, INTERVAL 1 DAY AS d")).rows()
    [(Decimal('2'), '1 day')]
    """
    plan = _fetch_plan(rel, "DECIMAL(38,0)")
    if plan is None:
        return rel.pl()
    try:
        return rel.project(plan).pl()
    except duckdb.ConversionException:
        wider = _fetch_plan(rel, "VARCHAR")    # a HUGEINT past 38 digits: as text, then
        assert wider is not None               # Polars' Int128 where the values fit
        df = rel.project(wider).pl()
        for column, sql_type in zip(rel.columns, rel.types, strict=True):
            if str(sql_type) in _WIDE_INTS:
                with contextlib.suppress(pl.exceptions.PolarsError):  # past Int128: text
                    df = df.with_columns(pl.col(column).cast(pl.Int128))
        return df


def _fetch_plan(rel: duckdb.DuckDBPyRelation, wide: str) -> str | None:
    casts = [fetch_type(str(t), wide) for t in rel.types]
    if not any(casts):
        return None
    return ", ".join(quote_ident(c) if cast is None else
                     f"CAST({quote_ident(c)} AS {cast}) AS {quote_ident(c)}"
                     for c, cast in zip(rel.columns, casts, strict=True))


def rows(con: duckdb.DuckDBPyConnection, sql: str,
         params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
    return (con.execute(sql, params) if params else con.execute(sql)).fetchall()


def scalar(con: duckdb.DuckDBPyConnection, sql: str,
           params: dict[str, Any] | list[Any] | None = None) -> Any:
    result = rows(con, sql, params)
    return result[0][0] if result else None


def temp_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(scalar(con, "SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
                            "AND database_name = 'temp') + (SELECT count(*) FROM duckdb_views() "
                            "WHERE view_name = ? AND temporary)", [table, table]))


def progress_bar_off(con: duckdb.DuckDBPyConnection) -> bool:
    """Turn DuckDB's own progress bar off; returns whether it was on. Only set when it is
    on: inside Jupyter DuckDB refuses any change of the setting (even to off) unless
    ipywidgets is installed, and there it starts off anyway."""
    was_on = bool(scalar(con, "SELECT current_setting('enable_progress_bar')"))
    if was_on:
        con.execute("SET enable_progress_bar = false")
    return was_on


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted so that any text is one name and never SQL.

    >>> quote_ident("events")
    '"events"'
    >>> quote_ident('x"; DROP TABLE events; --')
    '"x""; DROP TABLE events; --"'
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise UsageError(f"not a table or column name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A string as an SQL string literal, for a condition that must stand alone as text
    (an incident's pattern, shown to people and passed back to any stage or ``--pattern``).
    Queries run by the stages bind their values instead.

    >>> quote_literal("doc_qa")
    "'doc_qa'"
    >>> quote_literal("x' OR true --")
    "'x'' OR true --'"
    """
    if not isinstance(value, str) or "\x00" in value:
        raise UsageError(f"not a text value: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Tables and views of the case's own database (not temp, not attached ones)."""
    return [r[0] for r in rows(con, "SELECT table_name FROM information_schema.tables "
                                    "WHERE table_catalog = current_database() "
                                    "AND table_schema = 'main' ORDER BY 1")]


def known_table(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """``name`` quoted, once it is known to be one of the case's tables or views."""
    names = table_names(con)
    if name not in names:
        raise UsageError(f"no table or view named {name!r} in the case",
                         hint="tables and views: " + ", ".join(names))
    return quote_ident(name)


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows in one of the case's tables or views: ``count_rows(con, "events")``."""
    return int(scalar(con, f"SELECT count(*) FROM {known_table(con, table)}") or 0)


DEFAULT_ROW_CAP = 100_000
DEFAULT_TIME_LIMIT_S = 300.0


def run_sql(con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any] | None = None,
            *, title: str = "", row_cap: int | None = DEFAULT_ROW_CAP,
            time_limit: float | None = DEFAULT_TIME_LIMIT_S) -> Result:
    """Analyst SQL with named ``$parameters`` bound by DuckDB, a row cap and a time limit.

    >>> con = duckdb.connect()
    >>> run_sql(con, "SELECT $x + 1 AS y", {"x": 41}).rows()
    [{'y': 42}]
    >>> run_sql(con, "SELECT * FROM range(10)", row_cap=3).meta["warning"]
    'stopped at the row cap of 3 rows; more rows match'
    """
    if row_cap is not None and row_cap < 0:
        raise UsageError(f"row cap {row_cap} is negative", hint="give a cap of 1 or more rows")
    if time_limit is not None and time_limit < 0:
        raise UsageError(f"time limit {time_limit} s is negative",
                         hint="give a limit in seconds, or 0 for none")
    params = dict(params or {})
    df, truncated = _fetch(con, text, params, row_cap, time_limit)
    meta = {"truncated": True, "row_cap": row_cap,
            "warning": f"stopped at the row cap of {row_cap} rows; more rows match",
            "hint": "raise the cap (--row-cap N, row_cap=N) or narrow the query"} \
        if truncated else {}
    return Result(df, sql=text, params=params, title=title, meta=meta)


def _fetch(con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any],
           row_cap: int | None, time_limit: float | None) -> tuple[pl.DataFrame, bool]:
    timer = _interrupt_after(con, time_limit)
    try:
        rel = con.sql(text, params=params or None)
        if rel is None:
            return pl.DataFrame(), False
        if row_cap is None:
            return to_polars(rel), False
        df = to_polars(rel.limit(row_cap + 1))      # DuckDB stops producing rows past the cap
        return (df.head(row_cap), True) if df.height > row_cap else (df, False)
    except duckdb.InterruptException as exc:
        raise QueryTimeoutError(f"query stopped after the time limit of {time_limit} s") \
            from exc
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {exc}") from exc
    finally:
        if timer is not None:
            timer.cancel()


def _interrupt_after(con: duckdb.DuckDBPyConnection,
                     seconds: float | None) -> threading.Timer | None:
    if not seconds:
        return None
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    return timer

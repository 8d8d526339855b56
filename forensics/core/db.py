"""Small helpers over the DuckDB 2 Python API, used by every stage.

DuckDB 2 wants each result fully fetched before the next statement on a connection, and
hands results to Polars through Arrow.

>>> frame(con, "SELECT $x AS x", {"x": 1})   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl


def frame(con: duckdb.DuckDBPyConnection, sql: str,
          params: dict[str, Any] | list[Any] | None = None) -> pl.DataFrame:
    """Run ``sql`` with bound parameters and return all rows as a Polars DataFrame."""
    rel = con.sql(sql, params=params or None)
    if rel is None:
        return pl.DataFrame()
    return rel.pl()


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

"""Saved queries: ``queries/*.sql`` files with a comment header become callable queries.

A file looks like this::

    -- title: Bad rate by version and day
    -- description: Events, bad events and bad rate per day and prompt version.
    -- param: feature VARCHAR = NULL   -- one feature, or all
    -- param: days INTEGER = 30        -- how many days before the last event
    -- needs: events                   -- tables without which it has nothing to say
    -- empty: no bad events in this window   -- what no rows means, said when it happens
    SELECT ... WHERE getvariable('feature') IS NULL OR feature = getvariable('feature')

Parameters are DuckDB variables, set with bound values (``SET VARIABLE x = CAST(? AS T)``)
and read in the SQL with ``getvariable('x')``: never pasted into the text. The same file
therefore runs in the plain ``duckdb`` CLI after ``SET VARIABLE feature = 'doc_qa';``.

A query that returns no rows says why in ``meta["note"]``: a table it needs is empty in
this case ("no feedback in this case"), or else its ``-- empty:`` line.

>>> case.query("bad_rate_by_version_day", feature="doc_qa").df.height > 0
True
>>> list_queries()[0].name
'affected_users_by_cohort'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from forensics.core.db import (
    DEFAULT_ROW_CAP,
    DEFAULT_TIME_LIMIT_S,
    quote_ident,
    run_sql,
    scalar,
    table_names,
)
from forensics.core.errors import QueryError, QueryTimeoutError
from forensics.core.handle import CaseHandle
from forensics.core.result import Result, cell_text
from forensics.core.walls import check_statements, walled

_HEADER = re.compile(r"^--\s*(title|description|param|needs|empty)\s*:\s*(.*)$")
_PARAM = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s+(?P<type>[A-Za-z_][\w\[\]() ,]*?)"
                    r"(?:\s*=\s*(?P<default>.*?))?\s*(?:--\s*(?P<help>.*))?$")
TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP", "DATE", "INTERVAL",
         "VARCHAR[]"}


@dataclass
class Param:
    name: str
    type: str
    default: str | None        # SQL literal text from the header, or None (= NULL)
    help: str = ""


@dataclass
class SavedQuery:
    name: str
    path: Path
    title: str
    description: str
    params: list[Param] = field(default_factory=list)
    sql: str = ""
    needs: list[str] = field(default_factory=list)
    empty: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "path": str(self.path), "needs": self.needs, "empty": self.empty,
                "params": [{"name": p.name, "type": p.type, "default": p.default,
                            "help": p.help} for p in self.params]}


def parse(path: Path) -> SavedQuery:
    """Read one ``.sql`` file and its comment header."""
    text = path.read_text(encoding="utf-8")
    title, description, params, body = "", [], [], []
    needs: list[str] = []
    empty: list[str] = []
    in_header = True
    for line in text.splitlines():
        match = _HEADER.match(line.strip()) if in_header else None
        if match:
            key, value = match.groups()
            if key == "title":
                title = value.strip()
            elif key == "description":
                description.append(value.strip())
            elif key == "needs":
                needs += [t.strip() for t in value.split("--")[0].split(",") if t.strip()]
            elif key == "empty":
                empty.append(value.strip())
            else:
                params.append(_parse_param(path, value))
            continue
        if in_header and (not line.strip() or line.strip().startswith("--")):
            continue
        in_header = False
        body.append(line)
    if not title:
        raise QueryError(f"{path}: saved query has no '-- title:' header line")
    return SavedQuery(name=path.stem, path=path, title=title,
                      description=" ".join(description), params=params,
                      sql="\n".join(body).strip().rstrip(";"), needs=needs,
                      empty=" ".join(empty))


def _parse_param(path: Path, text: str) -> Param:
    match = _PARAM.match(text.strip())
    if not match:
        raise QueryError(f"{path}: cannot read parameter line {text!r}",
                         hint="write '-- param: name TYPE = default  -- help'")
    sql_type = match.group("type").strip().upper()
    if sql_type not in TYPES:
        raise QueryError(f"{path}: parameter {match.group('name')} has unsupported type "
                         f"{sql_type}", hint=f"use one of {sorted(TYPES)}")
    default = match.group("default")
    default = None if default is None or default.strip().upper() == "NULL" else default.strip()
    return Param(match.group("name"), sql_type, default, (match.group("help") or "").strip())


def query_dirs() -> list[Path]:
    """Where saved queries are looked for: ``$FORENSICS_QUERIES`` (``:``-separated), then
    the queries shipped inside the package (``forensics/queries/*.sql``)."""
    dirs = [Path(p) for p in os.environ.get("FORENSICS_QUERIES", "").split(os.pathsep) if p]
    dirs.append(Path(str(resources.files("forensics.queries"))))
    return [d for d in dirs if d.is_dir()]


def list_queries() -> list[SavedQuery]:
    found: dict[str, SavedQuery] = {}
    for folder in query_dirs():
        for path in sorted(folder.glob("*.sql")):
            found.setdefault(path.stem, parse(path))
    return sorted(found.values(), key=lambda q: q.name)


def get(name: str) -> SavedQuery:
    for saved in list_queries():
        if saved.name == name:
            return saved
    names = ", ".join(q.name for q in list_queries()) or "none found"
    raise QueryError(f"no saved query named {name!r}", hint=f"saved queries: {names}")


def _bind(con: duckdb.DuckDBPyConnection, saved: SavedQuery,
          params: dict[str, Any]) -> dict[str, Any]:
    known = {p.name for p in saved.params}
    unknown = set(params) - known
    if unknown:
        raise QueryError(f"query {saved.name} has no parameter(s) {sorted(unknown)}",
                         hint=f"its parameters: {sorted(known) or 'none'}")
    bound: dict[str, Any] = {}
    for p in saved.params:
        try:
            if p.name in params and params[p.name] is not None:
                con.execute(f"SET VARIABLE {p.name} = CAST(? AS {p.type})",
                            [params[p.name]]).fetchall()
            elif p.default is not None:
                # the default is the query author's SQL literal, from the header: one
                # expression, run on the walled connection
                check_statements(f"SELECT CAST({p.default} AS {p.type})", single=True)
                con.execute(f"SET VARIABLE {p.name} = CAST({p.default} AS {p.type})").fetchall()
            else:
                con.execute(f"SET VARIABLE {p.name} = CAST(NULL AS {p.type})").fetchall()
        except duckdb.Error as exc:
            reason = str(exc).strip().splitlines()[0]
            raise QueryError(f"query {saved.name}: parameter {p.name} "
                             f"({p.type}): cannot use {params.get(p.name, p.default)!r}: "
                             f"{reason}", hint=f"give {p.name} as a {p.type} value"
                             + (f", e.g. {p.default}" if p.default else "")
                             + (f" ({p.help})" if p.help else "")) from exc
        bound[p.name] = con.execute("SELECT getvariable(?)", [p.name]).fetchall()[0][0]
    return bound


def run(case: CaseHandle, name: str, *, row_cap: int | None = None, time_limit: float | None = None,
        **params: Any) -> Result:
    """Run the saved query ``name`` on the case with bound parameters: one statement, a
    query, on a walled connection (it reads the case and nothing else); with no rows,
    ``meta["note"]`` says why (see :func:`why_empty`)."""
    saved = get(name)
    statements = check_statements(saved.sql, single=True)
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(f"saved query {saved.name} ({saved.path}) is a "
                         f"{statements[0].type.name} statement; a saved query only reads",
                         hint="a saved query is one SELECT (WITH ... SELECT)")
    with walled(case) as con:
        bound = _bind(con, saved, params)
        try:
            result = run_sql(con, saved.sql, title=saved.title,
                             row_cap=DEFAULT_ROW_CAP if row_cap is None else row_cap,
                             time_limit=DEFAULT_TIME_LIMIT_S if time_limit is None
                             else time_limit)
        except QueryTimeoutError:
            raise
        except QueryError as exc:
            reason = exc.message.removeprefix("query failed: ").strip().splitlines()[0]
            raise QueryError(f"saved query {saved.name} failed: {reason}",
                             hint=f"its parameters were {_shown(bound) or 'none'}; the SQL is "
                                  f"in {saved.path}") from exc
        finally:
            for p in saved.params:
                con.execute(f"RESET VARIABLE {p.name}").fetchall()
        result.params = bound
        result.meta.update({"query": saved.name, "description": saved.description,
                            "file": str(saved.path)})
        if result.df.height == 0:
            result.meta["note"] = why_empty(case, saved, bound)
    return result
    result.params = bound
    result.meta.update({"query": saved.name, "description": saved.description,
                        "file": str(saved.path)})
    if result.df.height == 0:
        result.meta["note"] = why_empty(case, saved, bound)
    return result


# How each canonical table gets rows: said when a query has nothing to say without them.
FILL = {
    "events": "load evidence: forensics load CASE FILE",
    "evidence": "load evidence: forensics load CASE FILE",
    "feedback": "load a feedback file: forensics load CASE feedback.jsonl",
    "changes": "load a change log: forensics load CASE changes.csv",
    "labels": "run the detectors: forensics detect CASE",
    "clusters": "cluster the bad events: forensics cluster CASE",
    "cluster_members": "cluster the bad events: forensics cluster CASE",
    "retrievals": "the evidence holds no retrieved documents",
    "moderations": "the evidence holds no moderation or guardrail decisions",
    "milestones": "record them: forensics mark CASE detected --at TIME",
    "rejects": "every record of every file loaded",
}


def why_empty(case: CaseHandle, saved: SavedQuery, bound: dict[str, Any]) -> str:
    """Why ``saved`` returned no rows: the tables it needs that are empty in this case,
    else its ``-- empty:`` text with the parameters it ran with.

    >>> why_empty(case, get("reject_reasons"), {})
    'no rejects in this case (every record of every file loaded)'
    """
    present = set(table_names(case.con))
    missing = [t for t in saved.needs
               if t not in present or not scalar(case.con, f"SELECT EXISTS (SELECT 1 FROM "
                                                             f"{quote_ident(t)})")]
    if missing:
        by_hint: dict[str, list[str]] = {}
        for t in missing:
            by_hint.setdefault(FILL.get(t, ""), []).append(t)
        return "; ".join(f"no {' or '.join(ts)} in this case" + (f" ({h})" if h else "")
                         for h, ts in by_hint.items())
    text = saved.empty or "no rows match this query's conditions in this case"
    shown = _shown(bound)
    return text + (f" (parameters: {shown})" if shown else "")


def _shown(bound: dict[str, Any]) -> str:
    return ", ".join(f"{k}={cell_text(v)}" for k, v in bound.items() if v is not None)


def catalogue() -> Result:
    """The saved queries with their parameters, as a result."""
    rows = [{"name": q.name, "title": q.title,
             "params": ", ".join(f"{p.name} {p.type}" + (f" = {p.default}" if p.default else "")
                                 for p in q.params),
             "description": q.description} for q in list_queries()]
    df = pl.DataFrame(rows, schema={"name": pl.Utf8, "title": pl.Utf8, "params": pl.Utf8,
                                    "description": pl.Utf8})
    return Result(df, title="saved queries")

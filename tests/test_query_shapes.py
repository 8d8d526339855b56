"""Every saved query on every shape of case, with its defaults and with edge parameters,
in the three runners (the CLI, ``case.query``, the ``duckdb`` CLI): each returns rows, or
no rows with a note saying why, or an error in the one shape; never a traceback."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.cli.main import render_result as render
from forensics.core.errors import ForensicsError
from forensics.queries import runner as queries

from . import case_shapes as shapes

ALL = queries.list_queries()
DUCKDB_CLI = shutil.which("duckdb", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")

# Edge values per parameter type, as an analyst would type them after -p.
EDGES: dict[str, list[str]] = {
    "VARCHAR": ["", "x' OR 1=1 --", "ünï 🚚 " + "a" * 2000],
    "INTEGER": ["0", "-1", "2147483647"],
    "DOUBLE": ["0", "-1", "nan", "-inf", "1e308"],
    "BOOLEAN": ["true", "false"],
}

EDGES_FIRST = {values[0]: sql_type for sql_type, values in EDGES.items()}

BUILDERS: dict[str, Callable[[Path], Path]] = {
    **{f"sample_{name}": (lambda path, name=name: shapes.sample_case(path, name))  # type: ignore[misc]
       for name in shapes.SAMPLES},
    "audit_log": shapes.audit_case,
    "traces_only": shapes.traces_case,
    "empty": shapes.empty_case,
    "nulls_everywhere": shapes.nulls_case,
}
SHAPES = [pytest.param(name, marks=pytest.mark.corpus) if name == "traces_only" else name
          for name in BUILDERS]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {}


def case_path(built: dict[str, Path], shape: str,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shape not in built:
        built[shape] = BUILDERS[shape](tmp_path_factory.mktemp(shape) / "case.duckdb")
    return built[shape]


def param_sets(saved: queries.SavedQuery) -> list[dict[str, str]]:
    """The defaults, then each parameter alone at each of its type's edge values."""
    sets: list[dict[str, str]] = [{}]
    for p in saved.params:
        sets += [{p.name: value} for value in EDGES[p.type]]
    return sets


def in_the_cli(values: dict[str, str]) -> bool:
    """The CLI runs the defaults and each parameter's first edge (each run opens the case
    again; the other edges run through case.query and the DuckDB client)."""
    return all(EDGES_FIRST.get(v) == k for k, v in values.items())


def sql_literal(value: str, sql_type: str) -> str:
    """A value as an SQL literal for the duckdb CLI script (test-side only)."""
    return "CAST('" + value.replace("'", "''") + f"' AS {sql_type})"


def client_script(saved: queries.SavedQuery, values: dict[str, str]) -> list[str]:
    """What an analyst types in any DuckDB client: SET VARIABLE for each parameter (the
    header's defaults, then the values given), then the saved file as it is."""
    types = {p.name: p.type for p in saved.params}
    sets = [f"SET VARIABLE {p.name} = CAST({p.default or 'NULL'} AS {p.type})"
            for p in saved.params]
    sets += [f"SET VARIABLE {k} = {sql_literal(v, types[k])}" for k, v in values.items()]
    return [*sets, saved.path.read_text(encoding="utf-8").strip().rstrip(";")]


def client_counts(path: Path, saved: queries.SavedQuery,
                  sets: list[dict[str, str]]) -> list[int | None]:
    """Rows per parameter set from the ``duckdb`` CLI (one process for all sets), or,
    where no CLI is installed, from a fresh read-only connection of the duckdb package
    (any DuckDB client); None where the client reported an error."""
    if not DUCKDB_CLI:
        import duckdb

        counts: list[int | None] = []
        con = duckdb.connect(str(path), read_only=True)
        try:
            for values in sets:
                *setup, body = client_script(saved, values)
                try:
                    for statement in setup:
                        con.execute(statement)
                    counts.append(len(con.execute(body).fetchall()))
                except duckdb.Error:
                    counts.append(None)
        finally:
            con.close()
        return counts
    script = [".mode jsonlines"]
    for values in sets:
        script += [".print @@begin@@", *(s + ";" for s in client_script(saved, values)),
                   ".print @@end@@"]
    out = subprocess.run([DUCKDB_CLI, "-readonly", str(path)], input="\n".join(script),
                         capture_output=True, text=True, timeout=300)
    blocks = out.stdout.split("@@begin@@\n")[1:]
    assert len(blocks) == len(sets), out.stderr
    return [sum(1 for line in block.split("@@end@@")[0].splitlines() if line.startswith("{"))
            for block in blocks]


@pytest.mark.slow
@pytest.mark.parametrize("saved", ALL, ids=[q.name for q in ALL])
@pytest.mark.parametrize("shape", SHAPES)
def test_saved_query_on_every_shape(shape: str, saved: queries.SavedQuery,
                                    built: dict[str, Path],
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    path = case_path(built, shape, tmp_path_factory)
    sets = param_sets(saved)
    runner = CliRunner()
    api_counts: list[int | None] = []
    case = forensics.open(path, read_only=True)
    try:
        for values in sets:
            # case.query: rows, or no rows and a note, or a forensics error with a hint
            try:
                result = case.query(saved.name, **values)
            except ForensicsError as exc:
                assert exc.hint and "\n" not in exc.message, exc.message
                api_counts.append(None)
            else:
                assert len(result) > 0 or result.meta["note"], (values, result.meta)
                json.loads(result.to_json())
                api_counts.append(len(result))
            if not in_the_cli(values):
                continue
            # the CLI: one JSON document, the same answer
            args = ["query", str(path), saved.name, "--json"]
            for k, v in values.items():
                args += ["-p", f"{k}={v}"]
            out = runner.invoke(cli, args)
            doc = json.loads(out.stdout)
            if api_counts[-1] is None:
                assert out.exit_code == 1 and doc["ok"] is False and doc["hint"]
                assert doc["type"] != "internal", doc
            else:
                assert out.exit_code == 0 and doc["ok"], doc
                assert len(doc["rows"]) == api_counts[-1]
                assert doc["rows"] or doc["meta"]["note"]
    finally:
        case.close()
    for got, want in zip(client_counts(path, saved, sets), api_counts, strict=True):
        if want is not None:
            assert got == want


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_every_output_format_on_every_shape(shape: str, built: dict[str, Path],
                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each saved query's rows (defaults) as the CLI renders them: json parses back, csv
    reads back with the same rows, markdown and the table render; empty ones say why."""
    path = case_path(built, shape, tmp_path_factory)
    case = forensics.open(path, read_only=True)
    try:
        for saved in ALL:
            check_formats(case.query(saved.name), saved.name)
    finally:
        case.close()


def check_formats(result: Any, name: str) -> None:
    rows = json.loads(render(result, "json"))
    assert rows == result.rows() or len(rows) == len(result)
    as_csv = render(result, "csv")
    if rows:
        assert pl.read_csv(io.StringIO(as_csv), infer_schema=False).height == len(rows)
    for fmt in ("markdown", "table"):
        shown = render(result, fmt)
        assert all(c in shown for c in result.df.columns[:3]) or not result.df.width, name
        if not rows:
            assert result.meta["note"] in shown.replace("\n", " ") or fmt == "table", name


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["audit_log", "empty"])
def test_every_output_format_through_the_cli(shape: str, built: dict[str, Path],
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    path = case_path(built, shape, tmp_path_factory)
    runner = CliRunner()
    for saved in ALL:
        args = ["query", str(path), saved.name, "--format"]
        as_json = runner.invoke(cli, [*args, "json"])
        assert as_json.exit_code == 0, (saved.name, as_json.output)
        rows = json.loads(as_json.stdout)
        as_csv = runner.invoke(cli, [*args, "csv"]).stdout
        if rows:
            assert pl.read_csv(io.StringIO(as_csv), infer_schema=False).height == len(rows)
        for fmt in ("markdown", "table"):
            shown = runner.invoke(cli, [*args, fmt])
            assert shown.exit_code == 0 and "Traceback" not in shown.output, saved.name
            if not rows:
                assert "no " in shown.stdout    # the note says why there is nothing

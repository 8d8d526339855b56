"""A query run that goes wrong ends in the one error shape: a failing saved query, a bad
parameter, a time limit reached, a bad cap; a row cap reached says so with a hint. In the
CLI as ``{"ok": false, "error", "hint", "type"}`` (exit 1, never a traceback), in a
notebook as the short error box."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.core.errors import ForensicsError, QueryError, QueryTimeoutError

from .conftest import event, write_jsonl

SLOW = ("-- title: Slow\n-- description: counts a very long range\n"
        "SELECT count(*) AS n FROM range(100000000000) a")
BROKEN = ("-- title: Broken\n-- description: names a column no table has\n"
          "SELECT no_such_column FROM events")
WIDE = ("-- title: Wide\n-- description: more rows than a small cap\n"
        "-- param: n INTEGER = 50  -- how many\nSELECT * FROM range(getvariable('n')) t(i)")


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    folder = tmp_path / "queries"
    folder.mkdir()
    for name, text in {"slow": SLOW, "broken": BROKEN, "wide": WIDE}.items():
        (folder / f"{name}.sql").write_text(text, encoding="utf-8")
    monkeypatch.setenv("FORENSICS_QUERIES", str(folder))
    c = forensics.open(tmp_path / "c.duckdb")
    c.load(write_jsonl(tmp_path / "a.jsonl", [event(i) for i in range(5)]))
    c.close()
    return str(tmp_path / "c.duckdb"), {"FORENSICS_QUERIES": str(folder)}


CASES = [
    (["broken"], "QueryError", "saved query broken failed: Binder Error"),
    (["slow", "--time-limit", "0.5"], "QueryTimeoutError", "time limit of 0.5 s"),
    (["wide", "-p", "n=many"], "QueryError", "parameter n (INTEGER): cannot use 'many'"),
    (["wide", "-p", "m=1"], "QueryError", "has no parameter(s) ['m']"),
    (["wide", "--row-cap", "-1"], "UsageError", "row cap -1 is negative"),
    (["nope"], "QueryError", "no saved query named 'nope'"),
]


@pytest.mark.parametrize(("args", "kind", "message"), CASES, ids=[c[1] + "-" + c[0][0]
                                                                 for c in CASES])
def test_cli_errors_in_the_one_shape(setup: tuple[str, dict[str, str]], args: list[str],
                                     kind: str, message: str) -> None:
    path, env = setup
    runner = CliRunner()
    out = runner.invoke(cli, ["query", path, *args, "--json"], env=env)
    doc = json.loads(out.stdout)
    assert out.exit_code == 1 and set(doc) == {"ok", "error", "hint", "type"}
    assert doc["ok"] is False and doc["type"] == kind and message in doc["error"], doc
    assert doc["hint"] and "\n" not in doc["error"]
    plain = runner.invoke(cli, ["query", path, *args], env=env)   # without --json
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    assert "Error:" in plain.stderr and "Hint:" in plain.stderr


def test_row_cap_reached_says_so_with_a_hint(setup: tuple[str, dict[str, str]]) -> None:
    path, env = setup
    runner = CliRunner()
    doc = json.loads(runner.invoke(cli, ["query", path, "wide", "--row-cap", "10", "--json"],
                                   env=env).stdout)
    assert doc["ok"] and len(doc["rows"]) == 10 and doc["meta"]["truncated"] is True
    assert doc["meta"]["warning"] == "stopped at the row cap of 10 rows; more rows match"
    assert "--row-cap" in doc["meta"]["hint"]
    table = runner.invoke(cli, ["query", path, "wide", "--row-cap", "10"], env=env).stdout
    assert "warning: stopped at the row cap of 10 rows" in table and "hint: raise" in table
    whole = json.loads(runner.invoke(cli, ["query", path, "wide", "--json"], env=env).stdout)
    assert len(whole["rows"]) == 50 and "truncated" not in whole["meta"]


def test_the_same_errors_from_case_query(setup: tuple[str, dict[str, str]]) -> None:
    path, _ = setup
    case = forensics.open(path, read_only=True)
    try:
        with pytest.raises(QueryError, match="saved query broken failed"):
            case.query("broken")
        with pytest.raises(QueryTimeoutError, match="time limit"):
            case.query("slow", time_limit=0.5)
        with pytest.raises(QueryError, match="cannot use 'many'") as bad:
            case.query("wide", n="many")
        assert "INTEGER value, e.g. 50" in bad.value.hint
        assert case.query("wide", n=3).rows() == [{"i": 0}, {"i": 1}, {"i": 2}]  # still usable
    finally:
        case.close()


def test_notebook_shows_the_short_error_box(setup: tuple[str, dict[str, str]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    path, _ = setup
    shell = shell_mod.InteractiveShell.instance()
    shown: list[Any] = []
    shell.display_pub.publish = lambda data, **kw: shown.append(data)  # type: ignore[method-assign]
    try:
        shell.run_cell(f"import forensics; case = forensics.open({path!r}, read_only=True)")
        for cell, message in [("case.query('broken')", "saved query broken failed"),
                              ("case.query('slow', time_limit=0.5)", "time limit of 0.5 s"),
                              ("case.query('wide', n='many')", "cannot use"),
                              ("case.query('wide', row_cap=-1)", "row cap -1 is negative")]:
            shown.clear()
            result = shell.run_cell(cell)
            assert isinstance(result.error_in_exec, ForensicsError), cell
            box = "".join(d.get("text/html", "") for d in shown)
            assert message in box and "hint:" in box, (cell, box)
        shell.run_cell("case.close()")
        assert "Traceback" not in capsys.readouterr().out
    finally:
        shell_mod.InteractiveShell.clear_instance()

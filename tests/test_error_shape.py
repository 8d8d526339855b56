"""One error shape and one success envelope, pinned across every verb (Datasette's
``test_error_shape`` idea): a bad option, a DuckDB error or a bad value under ``--json``
prints exactly ``{"ok": false, "error", "hint", "type"}`` and exits non-zero; success is
``{"ok": true, "verb", "version", ...}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

import forensics
from forensics.cli.main import cli
from forensics.drills.generator import generate

VERBS = sorted(cli.commands)
ERROR_KEYS = {"ok", "error", "hint", "type"}


def invoke(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, list(args))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"{args}: not one JSON document on stdout: {result.stdout!r}"
    return result.exit_code, json.loads(lines[0])


def assert_error(code: int, doc: dict[str, Any], args: tuple[str, ...]) -> None:
    assert code != 0, args
    assert set(doc) == ERROR_KEYS, (args, doc)
    assert doc["ok"] is False and doc["error"] and doc["hint"], (args, doc)


@pytest.fixture(scope="module")
def drill_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("shape")
    generate(root / "drill", "prompt_regression", seed=3, events=2500, days=6)
    path = root / "case.duckdb"
    with forensics.open(path) as case:
        for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
            case.load(root / "drill" / name)
        case.detect()
    yield path


def _needed(verb: str, case: Path, tmp: Path) -> list[str]:
    """The required arguments of ``verb``, filled with something valid."""
    args = {"load": [str(case), str(tmp / "nothing.jsonl")],
            "import-labels": [str(case), str(tmp / "nothing.csv")],
            "report": [str(case), "-o", str(tmp / "pm")],
            "evals": [str(case), "-o", str(tmp / "ev")],
            "mark": [str(case), "detected"], "drill": [str(tmp / "d"), "--scenario",
                                                      "prompt_regression"],
            "demo": [], "query": [str(case), "labels_by_day"]}
    return args.get(verb, [str(case)])


@pytest.mark.parametrize("verb", VERBS)
def test_bad_option_is_the_error_shape(verb: str, tmp_path: Path) -> None:
    args = (verb, *_needed(verb, tmp_path / "c.duckdb", tmp_path), "--no-such-option", "--json")
    code, doc = invoke(*args)
    assert code == 2
    assert_error(code, doc, args)


CASE_VERBS = [v for v in VERBS if v not in ("drill", "demo")]


@pytest.mark.parametrize("verb", CASE_VERBS)
def test_not_a_case_is_the_error_shape(verb: str, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.duckdb"
    bad.write_bytes(b"this is not a DuckDB file\n" * 100)
    (tmp_path / "nothing.jsonl").write_text("{}\n")
    (tmp_path / "nothing.csv").write_text("event_id,label\n")
    args = (verb, *_needed(verb, bad, tmp_path), "--json")
    code, doc = invoke(*args)
    assert_error(code, doc, args)


@pytest.mark.parametrize("verb", [v for v in CASE_VERBS if v not in ("load", "import-labels",
                                                                     "mark")])
def test_duckdb_error_is_the_error_shape(verb: str, drill_case: Path, tmp_path: Path) -> None:
    """A case whose canonical views cannot bind (a table renamed behind their back, as a
    hand-edited file would): DuckDB's error reaches the user in the shape, not a
    traceback."""
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(drill_case.read_bytes())
    con = duckdb.connect(str(broken))
    con.execute("ALTER TABLE labels RENAME TO labels_gone")
    con.close()
    args = (verb, *_needed(verb, broken, tmp_path), "--json")
    code, doc = invoke(*args)
    if code == 0:       # verbs that never read event_facts (summary, milestones, findings)
        assert doc["ok"] is True and doc["verb"] == verb
        return
    assert_error(code, doc, args)


def test_unknown_word_is_an_error_not_an_empty_result(drill_case: Path) -> None:
    """``impact error``: a word that names no label is an error listing the labels."""
    for verb in ("impact", "suspects", "severity", "cluster"):
        code, doc = invoke(verb, str(drill_case), "--pattern", "no_such_label", "--json")
        assert_error(code, doc, (verb,))
        assert "no_such_label" in doc["error"] and "labels:" in doc["hint"]


SUCCESS = {
    "summary": [], "changes": [], "detect": [], "findings": [], "milestones": [],
    "impact": ["--pattern", "over_refusal"], "suspects": ["--pattern", "over_refusal"],
    "timeline": ["--metric", "refusal_rate"], "compare": ["--by", "prompt_version", "--a", "v12",
                                                          "--b", "v13"],
    "severity": ["--pattern", "over_refusal"], "incident": ["--pattern", "over_refusal"],
    "detection-gap": ["--pattern", "over_refusal"],
    "query": ["labels_by_day"], "cluster": [],
}


@pytest.mark.parametrize("verb", sorted(SUCCESS))
def test_success_envelope(verb: str, drill_case: Path, tmp_path: Path) -> None:
    work = tmp_path / "case.duckdb"
    work.write_bytes(drill_case.read_bytes())
    args = (verb, str(work), *SUCCESS[verb], "--json")
    code, doc = invoke(*args)
    assert code == 0, doc
    assert doc["ok"] is True and doc["verb"] == verb and doc["version"] == forensics.__version__


def test_success_envelope_without_a_case(tmp_path: Path) -> None:
    code, doc = invoke("query", "--list", "--json")
    assert code == 0 and doc["ok"] is True and doc["verb"] == "query"
    code, doc = invoke("drill", str(tmp_path / "d"), "--scenario", "prompt_regression",
                       "--events", "1000", "--days", "3", "--json")
    assert code == 0 and doc["verb"] == "drill"


def test_a_failed_open_does_not_hold_the_file(drill_case: Path, tmp_path: Path) -> None:
    """A case that fails to open for writing (its views cannot be made) leaves no
    connection behind: the next verb in the same process can still open it read-only."""
    broken = tmp_path / "broken.duckdb"
    broken.write_bytes(drill_case.read_bytes())
    con = duckdb.connect(str(broken))
    con.execute("ALTER TABLE labels RENAME TO labels_gone")
    con.close()
    code, doc = invoke("detect", str(broken), "--json")
    assert_error(code, doc, ("detect",))
    code, doc = invoke("summary", str(broken), "--json")
    assert code == 0 and doc["ok"] is True

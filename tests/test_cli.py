"""The CLI: thin verbs over the API, --json everywhere, one error shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from forensics.cli.main import cli

from .conftest import event, write_jsonl


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_load_json_prints_one_document(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(1), event(2)])
    code, out = run("load", str(tmp_path / "c.duckdb"), str(path), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True
    (row,) = doc["files"]
    assert {"path", "sha256", "format", "rows_loaded", "rows_rejected"} <= set(row)
    assert (row["rows_loaded"], row["rows_rejected"], row["format"]) == (2, 0, "jsonl")


def test_load_human_output_names_rejects(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(event(1)) + "\n{oops\n")
    code, out = run("load", str(tmp_path / "c.duckdb"), str(path))
    assert code == 0
    assert "1 loaded, 1 rejected" in out and "line 2" in out


def test_error_shape_is_pinned(tmp_path: Path) -> None:
    """Every failure under --json is exactly {ok: false, error, hint, type}, exit 1."""
    cases = [
        ("load", str(tmp_path / "c.duckdb"), str(tmp_path / "missing.jsonl"), "--json"),
        ("load", str(tmp_path / "c.duckdb"), str(write_jsonl(tmp_path / "x.jsonl", [event(1)])),
         "--format", "nope", "--json"),
    ]
    for args in cases:
        code, out = run(*args)
        assert code == 1, out
        doc = json.loads(out)
        assert set(doc) == {"ok", "error", "hint", "type"}
        assert doc["ok"] is False and doc["error"] and doc["hint"]


def test_summary_verb(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [event(i) for i in range(5)])
    run("load", str(tmp_path / "c.duckdb"), str(path))
    code, out = run("summary", str(tmp_path / "c.duckdb"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["rows"][0]["table"] == "events" and doc["rows"][0]["rows"] == 5


def test_help_lists_verbs() -> None:
    code, out = run("--help")
    assert code == 0
    for verb in ("load", "drill", "demo", "summary"):
        assert verb in out


def test_impact_verb(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl",
                       [event(i, status="error" if i % 2 else "ok") for i in range(10)])
    run("load", str(tmp_path / "c.duckdb"), str(path))
    code, out = run("impact", str(tmp_path / "c.duckdb"), "--by", "feature", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["events"] == 5 and doc["users"] and doc["sessions"]
    assert doc["window"]["start"] and doc["window"]["end"]


def test_help_lists_verbs_in_investigation_order_with_a_start_line() -> None:
    from forensics.cli.main import STAGES

    out = CliRunner().invoke(cli, ["--help"], terminal_width=100).output
    assert "Start here:" in out and "forensics demo" in out
    heads = [out.index(f"{title}:") for title, _ in STAGES]
    assert heads == sorted(heads)                          # sections in investigation order
    listed = [line.split()[0] for line in out.splitlines()
              if line.startswith("  ") and not line.startswith("   ") and line.split()
              and line.split()[0] in cli.commands]
    assert sorted(listed) == sorted(n for n, c in cli.commands.items() if not c.hidden)
    verbs = out[out.index(STAGES[0][0]):]
    assert not re.search(r"[a-z]\.\.\.$", verbs, re.M)      # descriptions are not cut

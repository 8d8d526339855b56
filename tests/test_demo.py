"""The demo, the README's first command: a drill investigated end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from forensics.cli.main import cli


def test_demo_finds_the_planted_cause_and_writes_the_postmortem(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--outdir", str(out), "--events", "12000",
                                      "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    key = doc["answer_key"]
    assert doc["root_cause"] == key["root_cause"]["change_id"]
    assert doc["root_cause_found"] is True
    assert doc["suspects"][0]["change_id"] == key["root_cause"]["change_id"]
    planted = key["affected"]["users"]
    assert abs(doc["impact"]["users"] - planted) <= max(3, 0.05 * planted)
    assert doc["playbook"]["severity"] in ("critical", "high", "medium", "low")
    assert (out / "postmortem" / "postmortem.md").read_text().startswith("# Post-mortem")
    assert (out / "postmortem" / "postmortem.html").exists()
    steps = [s["step"] for s in doc["steps"]]
    assert steps[0] == "Drill" and steps[-1].startswith("Answer key")
    assert "Which change caused it (suspects)" in steps


@pytest.mark.slow
def test_open_it_snippet_exits_cleanly_every_time(tmp_path: Path) -> None:
    """The demo's "open it" command, and the same without closing the case, run in fresh
    interpreters: exit 0 and nothing on stderr (DuckDB's objects are released before
    interpreter teardown, so no leak report and no abort)."""
    import subprocess

    import forensics
    from forensics.cli.demo import next_steps, open_snippet
    from tests.conftest import event, write_jsonl

    path = tmp_path / "case.duckdb"
    with forensics.open(path) as case:
        case.load(write_jsonl(tmp_path / "events.jsonl", [event(i) for i in range(200)]))
    snippet = open_snippet(path)
    assert any(snippet in line for line in next_steps(path, tmp_path))
    unclosed = snippet.replace("; c.close()", "")
    for command in [snippet] * 5 + [unclosed] * 5:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0 and done.stderr == "", (command, done.stderr[-500:])
        assert "events" in done.stdout

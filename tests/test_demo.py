"""The demo, the README's first command: a drill investigated end to end."""

from __future__ import annotations

import json
from pathlib import Path

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

"""The documentation stays true: the CLI reference is what --help says."""

from __future__ import annotations

from pathlib import Path

from forensics.clidoc import reference

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date() -> None:
    written = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == reference(), \
        "docs/cli.md is stale: run `python -m forensics.clidoc > docs/cli.md`"


def test_every_verb_has_a_section() -> None:
    from forensics.cli import cli

    text = reference()
    for verb in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"## forensics {verb}\n" in text

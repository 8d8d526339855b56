"""The documentation stays true: the CLI reference is what --help says."""

from __future__ import annotations

from pathlib import Path

from forensics.cli.doc import reference

REPO = Path(__file__).resolve().parents[1]


def test_cli_reference_is_up_to_date() -> None:
    written = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == reference(), \
        "docs/cli.md is stale: run `python -m forensics.cli.doc > docs/cli.md`"


def test_every_verb_has_a_section() -> None:
    from forensics.cli.main import cli

    text = reference()
    for verb in cli.list_commands(None):  # type: ignore[arg-type]
        assert f"## forensics {verb}\n" in text


def test_tutorial_commands_use_real_verbs_and_options() -> None:
    """Every `forensics` command line in docs/tutorial.md names a verb and options the CLI
    has (the tutorial's outputs are excerpts of a real run; this keeps its commands true)."""
    import re
    import shlex

    from forensics.cli.main import cli

    text = (REPO / "docs" / "tutorial.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines()
             if ln.startswith(".venv/bin/forensics ")]
    assert len(lines) >= 10
    for line in lines:
        words = shlex.split(line.split(" | ")[0])
        command = cli.get_command(None, words[1])  # type: ignore[arg-type]
        assert command is not None, f"no verb {words[1]!r}: {line}"
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        for word in words[2:]:
            if word.startswith("-"):
                assert word in known, f"forensics {words[1]} has no option {word}: {line}"

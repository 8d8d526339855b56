"""The command-line reference, generated from the CLI's own ``--help``.

    python -m forensics.cli.doc > docs/cli.md      # regenerate after changing a verb

A test compares ``docs/cli.md`` with this output, so the reference never drifts.

>>> reference().startswith("# Command-line reference")
True
"""

from __future__ import annotations

import click

from forensics.cli.main import cli

HEADER = """# Command-line reference

Generated from `forensics VERB --help` by `python -m forensics.cli.doc > docs/cli.md`;
a test fails when it is out of date. Every verb takes `--json` and then prints one JSON
document on stdout; errors are `{"ok": false, "error": ..., "hint": ...}` with a non-zero
exit code.
"""


def _help(command: click.Command, name: str, parent: click.Context | None = None) -> str:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=100,
                        max_content_width=100, **command.context_settings)
    return command.get_help(ctx)


def reference() -> str:
    """Markdown: the group's help, then one section per verb in alphabetical order."""
    parts = [HEADER, "## forensics", "", "```text", _help(cli, "forensics"), "```", ""]
    group_ctx = click.Context(cli, info_name="forensics", **cli.context_settings)
    for name in sorted(cli.list_commands(group_ctx)):
        command = cli.get_command(group_ctx, name)
        if command is None or command.hidden:
            continue
        parts += [f"## forensics {name}", "", "```text",
                  _help(command, name, group_ctx), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")

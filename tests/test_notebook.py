"""Notebook comfort: forensics errors render as a message with a hint."""

from __future__ import annotations

from typing import Any

import pytest


def test_errors_render_with_their_hint_in_ipython(capsys: pytest.CaptureFixture[str]) -> None:
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    shell = shell_mod.InteractiveShell.instance()
    shown: list[Any] = []
    shell.display_pub.publish = lambda data, **kw: shown.append(data)  # type: ignore[method-assign]
    try:
        shell.run_cell("import forensics; forensics.notebook.install()")
        result = shell.run_cell("from forensics.errors import LoadError\n"
                                "raise LoadError('audit.jsonl: no such file', hint='check it')")
        assert isinstance(result.error_in_exec, Exception)
        html = "".join(d.get("text/html", "") for d in shown)
        assert "audit.jsonl: no such file" in html and "check it" in html and "LoadError" in html
        assert "Traceback" not in capsys.readouterr().out
    finally:
        shell_mod.InteractiveShell.clear_instance()

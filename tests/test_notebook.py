"""Notebook comfort: forensics errors render as a message with a hint."""

from __future__ import annotations

import time
from typing import Any

import pytest


def test_errors_render_with_their_hint_in_ipython(capsys: pytest.CaptureFixture[str]) -> None:
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    shell = shell_mod.InteractiveShell.instance()
    shown: list[Any] = []
    shell.display_pub.publish = lambda data, **kw: shown.append(data)  # type: ignore[method-assign]
    try:
        shell.run_cell("import forensics; forensics.core.notebook.install()")
        result = shell.run_cell("from forensics.core.errors import LoadError\n"
                                "raise LoadError('audit.jsonl: no such file', hint='check it')")
        assert isinstance(result.error_in_exec, Exception)
        html = "".join(d.get("text/html", "") for d in shown)
        assert "audit.jsonl: no such file" in html and "check it" in html and "LoadError" in html
        assert "Traceback" not in capsys.readouterr().out
    finally:
        shell_mod.InteractiveShell.clear_instance()


def test_progress_draws_in_one_display_slot_and_ends_with_done() -> None:
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    from forensics.core.notebook import progress

    shell = shell_mod.InteractiveShell.instance()
    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    shell.display_pub.publish = (  # type: ignore[method-assign]
        lambda data, **kw: shown.append((data, kw)))
    try:
        with progress("loading", jupyter=True, delay=0) as update:
            update("hashing events.jsonl")
            for _ in range(500):            # wait for the first draw (no timing asserted)
                if shown:
                    break
                time.sleep(0.01)
        assert shown, "the progress line was never drawn"
        first, last = shown[0], shown[-1]
        assert "loading" in first[0]["text/html"]
        assert "loading: done in" in last[0]["text/html"]
        slots = {kw["transient"]["display_id"] for _, kw in shown}
        assert len(slots) == 1                 # redrawn in place, not appended
        assert all(kw.get("update") for _, kw in shown[1:])
    finally:
        shell_mod.InteractiveShell.clear_instance()


def test_shows_progress_is_a_plain_call_outside_jupyter() -> None:
    from forensics.core.notebook import in_jupyter, shows_progress

    seen: list[Any] = []

    @shows_progress("working")
    def work(x: int, progress: Any = None) -> int:
        seen.append(progress)
        return x + 1

    assert not in_jupyter()
    assert work(1) == 2 and seen == [None]     # no callback injected outside a kernel


def test_import_has_no_side_effects() -> None:
    """``import forensics`` imports no IPython and installs nothing."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, forensics; "
                          "print('IPython' in sys.modules)"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False" and out.stderr == ""


def test_opening_a_case_installs_the_error_box(tmp_path: Any) -> None:
    shell_mod = pytest.importorskip("IPython.core.interactiveshell")
    shell = shell_mod.InteractiveShell.instance()
    shown: list[Any] = []
    shell.display_pub.publish = lambda data, **kw: shown.append(data)  # type: ignore[method-assign]
    try:
        shell.set_custom_exc((), None)
        shell.run_cell(f"import forensics\nc = forensics.open(r'{tmp_path / 'c.duckdb'}')")
        shell.run_cell("c.impact('no_such_label')")
        shell.run_cell("c.close()")
        html = "".join(d.get("text/html", "") for d in shown)
        assert "no_such_label" in html and "hint" in html
    finally:
        shell_mod.InteractiveShell.clear_instance()

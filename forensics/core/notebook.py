"""Notebook comfort: a forensics error shows as a short message with its hint, not as a
wall of traceback (MSTICPy-style), installed in IPython when a case is first opened (or by
:func:`install`; importing forensics changes nothing);
long case operations (load, detect, cluster, post-mortem) show a progress line under
the running cell (:func:`progress`, :func:`shows_progress`).

>>> install()   # a no-op outside IPython
False
"""

from __future__ import annotations

import functools
import inspect
import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import escape
from typing import Any, TypeVar

from forensics.core.errors import ForensicsError


def _show(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
          tb_offset: int | None = None) -> None:
    """IPython custom exception handler for :class:`ForensicsError`."""
    assert isinstance(value, ForensicsError)
    try:
        from IPython.display import HTML, display

        where = ""
        if tb is not None:
            last = tb
            while last.tb_next is not None:
                last = last.tb_next
            where = f"{last.tb_frame.f_code.co_filename}:{last.tb_lineno}"
        display(HTML(value._repr_html_() + (
            f"<div style='color:#888;font-size:80%'>raised at {escape(where)}; "
            "<code>%tb</code> shows the full traceback</div>" if where else "")))
    except Exception:  # never hide the error itself
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def install() -> bool:
    """Register the handler in the running IPython shell; True when one was found.

    Nothing happens on ``import forensics``: opening a case installs it (once), or call
    this yourself. Outside IPython (IPython not already imported) it is a no-op."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((ForensicsError,), _show)
    return True


# -- progress in the notebook --------------------------------------------------------
# The CLI draws its progress on stderr (cli.progress_bar). In a Jupyter kernel rich's own
# live display needs ipywidgets; instead the same rich columns are rendered to HTML and
# redrawn in one display slot under the running cell (IPython's update_display).

F = TypeVar("F", bound=Callable[..., Any])
REFRESH_S = 0.25


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


class _Bar:
    """A rich progress line drawn as HTML in one display slot, redrawn in place."""

    def __init__(self, label: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(record=True, file=io.StringIO(), width=100,
                               force_jupyter=False, color_system="truecolor")
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 BarColumn(), TimeElapsedColumn(), console=self.console,
                                 auto_refresh=False)
        self.task = self.progress.add_task(label, total=total)
        self.label = label
        self.handle: Any = None
        self.lock = threading.Lock()

    def update(self, message: str | int | None = None, total: int | None = None) -> None:
        if isinstance(message, int):
            self.progress.update(self.task, completed=message, total=total)
        elif message:
            self.progress.update(self.task, description=f"{self.label}: {message}")

    def html(self, renderable: Any) -> str:
        self.console.print(renderable)
        return self.console.export_html(inline_styles=True, code_format=(
            "<pre style=\"font-family:Menlo,'DejaVu Sans Mono',consolas,monospace;"
            "line-height:1.3;margin:0\">{code}</pre>"))

    def draw(self, renderable: Any = None) -> None:
        from IPython.display import HTML, display

        with self.lock:
            page = HTML(self.html(renderable or self.progress.get_renderable()))
            if self.handle is None:
                self.handle = display(page, display_id=True)
            else:
                self.handle.update(page)


@contextmanager
def progress(label: str, total: int | None = None, *, delay: float = 1.0,
             jupyter: bool | None = None) -> Iterator[Callable[..., None]]:
    """A progress line under the running cell for work longer than ``delay`` seconds,
    replaced by ``label: done in 2.3 s`` at the end; a no-op outside Jupyter. Yields
    ``update(message)`` (a stage) or ``update(done, total)`` (a count).

    >>> with progress("loading", jupyter=False) as update:
    ...     update("hashing")
    """
    if not (in_jupyter() if jupyter is None else jupyter):
        yield lambda *_args, **_kw: None
        return
    bar = _Bar(label, total)
    stop = threading.Event()
    started = time.monotonic()

    def refresh() -> None:
        if stop.wait(delay):
            return
        while not stop.is_set():
            bar.draw()
            stop.wait(REFRESH_S)

    thread = threading.Thread(target=refresh, daemon=True)
    thread.start()
    ok = False
    try:
        yield bar.update
        ok = True
    finally:
        stop.set()
        thread.join()
        if bar.handle is not None:
            from rich.text import Text

            verdict = "done" if ok else "stopped"
            bar.draw(Text(f"{label}: {verdict} in {time.monotonic() - started:.1f} s",
                          style="green" if ok else "red"))


def shows_progress(label: str) -> Callable[[F], F]:
    """Decorate a long :class:`~forensics.case.Case` method: in Jupyter it runs under
    :func:`progress`, which also feeds the method's ``progress`` callback when it has one
    and none was given."""
    def wrap(fn: F) -> F:
        feeds = "progress" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not in_jupyter() or (feeds and kwargs.get("progress") is not None):
                return fn(*args, **kwargs)
            with progress(label) as update:
                if feeds:
                    kwargs["progress"] = update
                return fn(*args, **kwargs)
        return run  # type: ignore[return-value]
    return wrap

"""Notebook comfort: a forensics error shows as a short message with its hint, not as a
wall of traceback (MSTICPy-style). Installed when forensics is imported inside IPython.

>>> install()   # a no-op outside IPython
False
"""

from __future__ import annotations

from html import escape
from typing import Any

from .errors import ForensicsError


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
    """Register the handler in the running IPython shell; True when one was found."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((ForensicsError,), _show)
    return True

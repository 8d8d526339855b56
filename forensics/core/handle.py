"""The case handle: what a stage needs of an open case, and nothing more.

Stages take a :class:`CaseHandle`, never the ``Case`` facade, so the layers run one way:
``core`` below the stages, the stages below ``Case`` and the CLI. ``Case`` satisfies the
protocol, and so does any object with these attributes (a test's own, a Spark engine's).

>>> import duckdb
>>> from pathlib import Path
>>> class Handle:
...     def __init__(self) -> None:
...         self.con = duckdb.connect()
...         self.read_only = False
...         self.path = Path(":memory:")
>>> isinstance(Handle(), CaseHandle)
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import duckdb

from forensics.core.errors import ReadOnlyCaseError


@runtime_checkable
class CaseHandle(Protocol):
    """An open case file: its DuckDB connection, whether it is read-only, its path. A stage
    reads ``case.con`` while it runs and keeps it no longer (the case may open the file
    for that one call)."""

    read_only: bool
    path: Path

    @property
    def con(self) -> duckdb.DuckDBPyConnection: ...


def require_writable(case: CaseHandle, action: str = "this step") -> None:
    """Refuse a write on a read-only case with a hint.

    >>> class RO:
    ...     con, read_only, path = None, True, Path("case.duckdb")
    >>> require_writable(RO(), "detect")
    Traceback (most recent call last):
    ...
    forensics.core.errors.ReadOnlyCaseError: case file case.duckdb is open read-only: ...
    """
    if case.read_only:
        raise ReadOnlyCaseError(f"case file {case.path} is open read-only: {action} writes to it",
                                hint="open the case without read_only (CLI: without --read-only)")

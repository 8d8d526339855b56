"""Runs of the stages that write (detect, cluster, imports): each gets an id in ``runs``,
and DuckDB's own progress bar is kept off while one runs.

>>> import forensics
>>> case = forensics.open(":memory:")
>>> new_run(case, "detect", {"rules": ["refusal"]})
'detect-0001'
>>> case.close()
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from forensics.core.db import progress_bar_off, scalar
from forensics.core.handle import CaseHandle
from forensics.core.result import dumps


def new_run(case: CaseHandle, stage: str, params: dict[str, Any]) -> str:
    """Record a run of ``stage`` in ``runs`` and return its id (``detect-0003``)."""
    n = scalar(case.con, "SELECT count(*) FROM runs WHERE stage = ?", [stage]) or 0
    run_id = f"{stage}-{int(n) + 1:04d}"
    case.con.execute("INSERT INTO runs VALUES (?, ?, ?, ?)",
                     [run_id, stage, dumps(params, ensure_ascii=True),
                      dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    return run_id


@contextmanager
def quiet(case: CaseHandle) -> Iterator[None]:
    """DuckDB's progress bar writes to stdout (even when it is not a terminal), which would
    corrupt ``--json`` output: off while a stage runs, then back as it was."""
    before = progress_bar_off(case.con)
    try:
        yield
    finally:
        if before:
            case.con.execute("SET enable_progress_bar = true")

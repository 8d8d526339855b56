"""The case file the three notebooks share.

Notebook 01 builds it step by step; 02 and 03 call :func:`open_case`, which builds it
the same way when it is missing, so each notebook also runs on its own (as CI runs them).
The working folder is ``notebooks/work/`` unless ``FORENSICS_NOTEBOOK_WORK`` names
another one.
"""

from __future__ import annotations

import os
from pathlib import Path

import forensics

HERE = Path(__file__).resolve().parent
# The committed drill, as a path relative to the notebooks (they run from this folder).
SAMPLE = Path(os.path.relpath(HERE.parent / "sample_data" / "prompt_regression"))
EVIDENCE = ("events.jsonl.gz", "feedback.jsonl.gz", "changes.jsonl")
WORK = Path(os.environ.get("FORENSICS_NOTEBOOK_WORK") or HERE / "work")
CASE_PATH = WORK / "prompt_regression.duckdb"


def open_case() -> forensics.Case:
    """The case notebook 01 built, or built here the same way when it is missing or
    incomplete: load the three files, run the detectors, cluster the bad outputs."""
    WORK.mkdir(parents=True, exist_ok=True)
    case = forensics.open(CASE_PATH)
    if case.count("evidence") < len(EVIDENCE):
        for name in EVIDENCE:
            case.load(SAMPLE / name)        # a file already in the case is skipped
    if case.count("labels") == 0:
        case.detect()
    if case.count("cluster_members") == 0:
        case.cluster()
    return case

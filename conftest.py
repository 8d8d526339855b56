"""Doctests run on a real case: ``case`` in every ``>>>`` example of the package is the
committed sample drill ``sample_data/prompt_regression`` (a prompt change, CHG-2041, made
the support assistant refuse benign questions: label ``over_refusal``), loaded, labelled
and clustered once per test session. Examples run in a temporary working folder, where
they may write small files and open new cases; ``Path``, ``json`` and ``forensics`` are
at hand."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.doctest import DoctestItem

SAMPLE = Path(__file__).resolve().parent / "sample_data" / "prompt_regression"


@pytest.fixture(scope="session")
def doctest_case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import forensics

    path = tmp_path_factory.mktemp("doctest") / "incident.duckdb"
    with forensics.open(path) as case:
        for name in ("events.jsonl.gz", "changes.jsonl", "feedback.jsonl.gz"):
            case.load(SAMPLE / name)
        case.detect()
        case.cluster()
    case = forensics.open(path)
    yield case
    case.close()


@pytest.fixture(autouse=True)
def _doctest_namespace(request: pytest.FixtureRequest, doctest_namespace: dict[str, Any],
                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not isinstance(request.node, DoctestItem):
        return
    monkeypatch.chdir(tmp_path)
    doctest_namespace["case"] = request.getfixturevalue("doctest_case")
    doctest_namespace["SAMPLE"] = SAMPLE
    doctest_namespace["Path"] = Path
    doctest_namespace["json"] = json
    doctest_namespace["forensics"] = importlib.import_module("forensics")

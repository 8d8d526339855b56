"""Shared fixtures: real case files in tmp_path, real files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import forensics

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("FORENSICS_CORPUS", REPO.parent / "shared" / "corpus"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CORPUS.is_dir():
        return
    skip = pytest.mark.skip(reason=f"corpus not found at {CORPUS}")
    for item in items:
        if "corpus" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def case(tmp_path: Path) -> Any:
    c = forensics.open(tmp_path / "case.duckdb")
    yield c
    c.close()


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def event(i: int, **extra: Any) -> dict[str, Any]:
    base = {"event_id": f"e{i}", "ts": f"2026-03-01T10:{i % 60:02d}:00Z", "user_id": f"u{i % 7}",
            "session_id": f"s{i % 11}", "feature": "support_chat", "model": "gpt-4o",
            "input_text": f"question {i}", "output_text": f"answer {i}", "input_tokens": 10 + i,
            "output_tokens": 5}
    base.update(extra)
    return base


def feedback(**fields: Any) -> dict[str, Any]:
    """A feedback record (thumbs, complaint, reviewer verdict) given the day after."""
    return {"ts": "2026-03-02T00:00:00Z", **fields}

"""Property: whatever mess a file holds, records in = loaded + rejected, and the counts
match what the file really contains."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import forensics

KINDS = ["good", "truncated", "invalid", "no_ts", "bad_ts", "bad_type", "dup", "blank",
         "latin1", "array", "good_epoch", "good_offset"]


def render(kind: str, i: int, text: str) -> bytes:
    ok = {"event_id": f"e{i}", "ts": "2026-03-01T10:00:00Z", "output_text": text}
    if kind == "good":
        return json.dumps(ok).encode()
    if kind == "good_epoch":
        return json.dumps(dict(ok, ts=1772359200 + i)).encode()
    if kind == "good_offset":
        return json.dumps(dict(ok, ts="2026-03-01T10:00:00-07:00")).encode()
    if kind == "truncated":
        return json.dumps(ok).encode()[:-3]
    if kind == "invalid":
        return b"{event_id: " + str(i).encode() + b"}"
    if kind == "no_ts":
        return json.dumps({"event_id": f"e{i}", "output_text": text}).encode()
    if kind == "bad_ts":
        return json.dumps(dict(ok, ts="32/13/2026 25:61")).encode()
    if kind == "bad_type":
        return json.dumps(dict(ok, output_tokens={"n": 1})).encode()
    if kind == "dup":
        return json.dumps(dict(ok, event_id="e-dup")).encode()
    if kind == "latin1":
        return b'{"event_id": "x' + str(i).encode() + b'", "ts": "2026-03-01", "o": "\xe9"}'
    if kind == "array":
        return b"[1]"
    return b""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.text(max_size=30)), min_size=1,
                max_size=40))
@pytest.mark.slow
def test_counts_always_balance(records: list[tuple[str, str]]) -> None:
    kinds = [k for k, _ in records]
    lines = [render(k, i, t) for i, (k, t) in enumerate(records)]
    good = sum(k in ("good", "good_epoch", "good_offset") for k in kinds)
    dups = sum(k == "dup" for k in kinds)
    expected_loaded = good + min(dups, 1)
    non_blank = sum(k != "blank" for k in kinds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messy.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        case = forensics.open(Path(tmp) / "c.duckdb")
        try:
            if non_blank == 0:
                return
            row = case.load(path, format="jsonl").rows()[0]
            assert row["records_in"] == non_blank
            assert row["records_in"] == row["rows_loaded"] + row["rows_rejected"]
            assert row["rows_loaded"] == expected_loaded
            assert case.count("events") == expected_loaded
            assert case.count("rejects") == non_blank - expected_loaded
            locators = [r[0] for r in case.con.execute("SELECT locator FROM rejects").fetchall()]
            assert len(set(locators)) == len(locators)
        finally:
            case.close()

"""Cases of different shapes, built from real files on disk, for the saved-query tests:
the sample drills, a generic audit log of varied value types, a case of real third-party
traces only, an empty case, and a case with NULL in every optional column."""

from __future__ import annotations

from pathlib import Path

import forensics

from .conftest import CORPUS, REPO, write_jsonl

SAMPLES = sorted(p.name for p in (REPO / "sample_data").iterdir() if p.is_dir())
TRACES_ONLY = CORPUS / "traces" / "otel_genai" / "all-spans.json"


def sample_case(path: Path, drill: str) -> Path:
    """A sample drill loaded, detected, clustered, with a milestone."""
    c = forensics.open(path)
    try:
        for name in ("events.jsonl.gz", "feedback.jsonl.gz", "changes.jsonl"):
            c.load(REPO / "sample_data" / drill / name)
        c.detect()
        c.cluster()
        c.mark("detected", "2026-03-10T16:00:00Z", note="support escalation")
    finally:
        c.close()
    return path


def audit_records(n: int = 120) -> list[dict[str, object]]:
    """A generic JSONL audit log as a gateway writes it: costs as JSON numbers, token
    counts near the BIGINT limit, nested metadata, arrays, booleans, NULLs, unicode and
    one very long output; some errors, tool calls and retrieved documents."""
    out: list[dict[str, object]] = []
    for i in range(n):
        out.append({
            "event_id": f"a{i}",
            "ts": f"2026-03-0{1 + i // 40}T{(i // 2) % 24:02d}:{i % 60:02d}:07Z",
            "user_id": f"user-{i % 9}", "session_id": f"sess-{i % 13}",
            "feature": ["support_chat", "doc_qa"][i % 2], "model": "gpt-4o-mini",
            "response_model": "gpt-4o-mini-2024-07-18" if i < 80 else "gpt-4o-mini-2025-01-01",
            "prompt_version": "v1" if i < 60 else "v2",
            "retrieval_version": "r1" if i < 70 else "r2",
            "input_text": f"Où est ma commande n°{i}? 🚚", "latency_ms": 120.5 + (i % 17) * 40,
            "output_text": ("x" * 5000) if i == 7 else f"Réponse {i}: « d'accord »",
            "status": "error" if i % 11 == 0 else "ok",
            "error": "rate limit 429 after 3 retries" if i % 11 == 0 else None,
            "input_tokens": 4_000_000_000_000_000_000 if i == 3 else 100 + i,
            "output_tokens": 4_000_000_000_000_000_000 if i == 3 else 20 + i % 5,
            "cost": 0.000123 * (i + 1) if i < 100 else 2.5 + i,
            "tool_name": "issue_refund" if i % 9 == 0 else None,
            "retrievals": [{"doc_id": f"doc{i % 5 if i < 70 else i % 5 + 3}", "score": 0.5,
                            "content": "policy text"}],
            "metadata": {"plan": ["free", "pro"][i % 2], "flags": [True, None, False],
                         "price": {"amount": 1.10, "currency": "EUR"}, "big": 2**63 - 1,
                         "nested": [[1, 2], []]},
        })
    return out


def audit_case(path: Path) -> Path:
    """A case from a generic audit log plus feedback and a change log, detected."""
    folder = path.parent
    c = forensics.open(path)
    try:
        c.load(write_jsonl(folder / "audit.jsonl", audit_records()))
        c.load(write_jsonl(folder / "feedback.jsonl", [
            {"event_id": f"a{i}", "ts": "2026-03-03T09:00:00Z", "name": "thumbs",
             "value": "down" if i % 2 else "up", "comment": "pas bien" if i % 2 else None}
            for i in range(0, 120, 7)]))
        c.load(write_jsonl(folder / "changes.jsonl", [
            {"ts": "2026-03-02T12:00:00Z", "kind": "prompt", "feature": "support_chat",
             "from_version": "v1", "to_version": "v2", "note": "shorter system prompt"}]))
        c.detect()
        c.cluster()
    finally:
        c.close()
    return path


def traces_case(path: Path) -> Path:
    """Only real third-party spans (Vercel AI SDK, OpenAI calls): no feedback, no
    changes, no labels beyond what detect finds."""
    c = forensics.open(path)
    try:
        c.load(TRACES_ONLY)
    finally:
        c.close()
    return path


def empty_case(path: Path) -> Path:
    forensics.open(path).close()
    return path


def nulls_case(path: Path) -> Path:
    """Every optional column NULL: events with only an id (and a time on some), feedback
    and changes with nothing but their required fields."""
    folder = path.parent
    optional = ["trace_id", "span_id", "parent_id", "duration_ms", "user_id", "session_id",
                "feature", "kind", "provider", "model", "response_model", "prompt_name",
                "prompt_version", "retrieval_version", "release", "input_text", "output_text",
                "finish_reason", "status", "error", "input_tokens", "output_tokens",
                "cost_usd", "tool_name", "tool_args"]
    records = [{"event_id": f"n{i}", "ts": f"2026-03-01T10:0{i}:00Z" if i % 2 else None,
                **dict.fromkeys(optional)} for i in range(6)]
    c = forensics.open(path)
    try:
        c.load(write_jsonl(folder / "nulls.jsonl", records))
        c.load(write_jsonl(folder / "fb.jsonl", [
            {"event_id": "n1", "ts": None, "name": "thumbs", "value": None, "comment": None}]))
        c.load(write_jsonl(folder / "ch.jsonl", [
            {"ts": "2026-03-01T10:02:00Z", "kind": "prompt", "feature": None,
             "from_version": None, "to_version": None}]))
        c.detect()
    finally:
        c.close()
    return path

"""Recall of the redactor and of the ``private_data`` detector per type of private datum,
on the planted values of tests/plants.py and on every real leak in DecodingTrust's privacy
generations; the detector's flag rate on benign events; the cost of set-based redaction
against redacting row by row.

    .venv/bin/python bench/bench_redaction.py [--runs 3]

Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import forensics  # noqa: E402
from forensics.core.redact import redact_frame, redact_text  # noqa: E402
from tests.plants import ORDINARY, SYNTHETIC  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
DT = CORPUS / "texts/decodingtrust_privacy/data/privacy/generations/pii"


def real_leaks() -> list[tuple[str, str, str, str]]:
    """(type, request, output, planted value) for every DecodingTrust row that leaked."""
    rows = []
    for path in sorted(DT.glob("*.jsonl")):
        kind = "dt_" + path.name.split("_1shot")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r["gt"] and r["gt"] in (r["continuation"] or ""):
                rows.append((kind, r["prompt"][-1]["content"], r["continuation"], r["gt"]))
    return rows


def detector_hits(records: list[dict[str, str]]) -> set[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.jsonl"
        path.write_text("".join(json.dumps({"ts": "2026-03-01T00:00:00Z", **r}) + "\n"
                                for r in records), encoding="utf-8")
        with forensics.open(Path(tmp) / "c.duckdb") as case:
            case.load(path)
            case.detect(rules=["private_data"])
            return {r["event_id"] for r in case.sql("SELECT DISTINCT event_id FROM labels",
                                                     row_cap=None).rows()}


def recall_table() -> list[str]:
    cases = [(k, "help me", f"Here you go: {t}", needles) for k, t, needles in SYNTHETIC]
    if DT.is_dir():
        cases += [(k, req, out, (gt,)) for k, req, out, gt in real_leaks()]
    records = [{"event_id": f"p{i}", "input_text": req, "output_text": out}
               for i, (_, req, out, _) in enumerate(cases)]
    found = detector_hits(records)
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for i, (kind, req, out, needles) in enumerate(cases):
        red = redact_text(out, request=req) or ""
        # alone: the output redacted with no request beside it
        alone = redact_text(out) or ""
        per[kind][0] += 1
        per[kind][1] += all(n not in red for n in needles)
        per[kind][2] += f"p{i}" in found
        per[kind + " (output alone)"][0] += 1
        per[kind + " (output alone)"][1] += all(n not in alone for n in needles)
        per[kind + " (output alone)"][2] += f"p{i}" in found
    lines = ["| type | values | redacted | redactor recall | detector flagged | detector recall |",
             "|---|---|---|---|---|---|"]
    for kind in sorted(per):
        n, r, d = per[kind]
        if kind.endswith("(output alone)") and not kind.startswith("dt_"):
            continue
        det = f"{d} | {d / n:.3f}" if not kind.endswith("(output alone)") else "- | -"
        lines.append(f"| {kind} | {n} | {r} | {r / n:.3f} | {det} |")
    return lines


def benign_rate() -> list[str]:
    """Flags on events with no planted leak: the committed sample drill (its incident is a
    prompt regression, no private data), DecodingTrust's non-leaking rows, and ORDINARY."""
    out = []
    with tempfile.TemporaryDirectory() as tmp, forensics.open(Path(tmp) / "c.duckdb") as case:
        case.load(ROOT / "sample_data/prompt_regression/events.jsonl.gz")
        case.detect(rules=["private_data"])
        n = case.sql("SELECT count(*) AS n FROM events WHERE output_text IS NOT NULL"
                     ).rows()[0]["n"]
        k = case.sql("SELECT count(DISTINCT event_id) AS n FROM labels").rows()[0]["n"]
        out.append(f"| sample drill (prompt_regression) outputs | {n} | {k} | {k / n:.4f} |")
    if DT.is_dir():
        rows = []
        for path in sorted(DT.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                r = json.loads(line)
                if not (r["gt"] and r["gt"] in (r["continuation"] or "")):
                    rows.append({"event_id": f"n{len(rows)}", "input_text":
                                 r["prompt"][-1]["content"], "output_text": r["continuation"]})
        k = len(detector_hits(rows))
        out.append(f"| DecodingTrust rows that did not leak | {len(rows)} | {k} | "
                   f"{k / len(rows):.4f} |")
    changed = sum(redact_text(t) != t for t in ORDINARY)
    out.append(f"| ordinary sentences (tests/plants.py), redacted | {len(ORDINARY)} | {changed} | "
               f"{changed / len(ORDINARY):.4f} |")
    return ["| benign events | events | flagged | rate |", "|---|---|---|---|", *out]


def speed(runs: int) -> list[str]:
    """redact_frame (distinct values, prefilter) against redact_text on every row, on the
    sample drill's outputs (200,000 rows drawn with repeats, as a query result would be)."""
    with tempfile.TemporaryDirectory() as tmp, forensics.open(Path(tmp) / "c.duckdb") as case:
        case.load(ROOT / "sample_data/prompt_regression/events.jsonl.gz")
        texts = case.sql("SELECT output_text AS t FROM events WHERE output_text IS NOT NULL",
                         row_cap=None).df["t"]
    df = pl.DataFrame({"t": texts.sample(200_000, with_replacement=True, seed=1)})
    base, ours = [], []
    for _ in range(runs):
        start = time.perf_counter()
        [redact_text(t) for t in df["t"].to_list()]
        base.append(time.perf_counter() - start)
        start = time.perf_counter()
        redact_frame(df)
        ours.append(time.perf_counter() - start)
    b, o = statistics.median(base), statistics.median(ours)
    return [f"| redact_text on every row (baseline) | {df.height:,} | {df['t'].n_unique():,} | "
            f"{b:.2f} |",
            f"| redact_frame (distinct values, prefilter) | {df.height:,} | "
            f"{df['t'].n_unique():,} | {o:.2f} |", "", f"Ratio: **{b / o:.1f}x** faster."]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print("\n".join(recall_table()))
    print()
    print("\n".join(benign_rate()))
    print()
    print("| redaction of a text column | rows | distinct | median s |\n|---|---|---|---|")
    print("\n".join(speed(args.runs)))


if __name__ == "__main__":
    main()

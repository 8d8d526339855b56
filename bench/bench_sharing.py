"""Sharing: what a Case that holds no write connection between calls costs.

    .venv/bin/python bench/bench_sharing.py [--repeat 5] [--rounds 3]

The committed sample drill is loaded and detected once into a case under ``$BENCH_DATA``
(default ``/work/bench-data/sharing``). A round of calls (``count``, ``summary``,
``impact``, ``case.sql``) is timed on one writable ``Case`` in three ways, back to back:

* ``default``: as shipped (each read on the read-only connection kept from the last read);
* ``fresh``: a new read-only connection for every call (the kept one released first);
* ``kept``: the baseline, one connection held by ``case.con`` for every call (what a
  Case did before, locking out every other process).

Each figure is the median of ``--repeat`` rounds; the ratios are against ``kept``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import forensics

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "prompt_regression"


def _case(folder: Path) -> Path:
    path = folder / "sharing.duckdb"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with forensics.open(path) as case:
            for name in ("events.jsonl.gz", "feedback.jsonl.gz", "changes.jsonl"):
                case.load(SAMPLE / name)
            case.detect()
    return path


def _round(case: forensics.Case, before: Callable[[], None]) -> float:
    start = time.perf_counter()
    for call in (lambda: case.count("events"), case.summary,
                 lambda: case.impact("over_refusal"),
                 lambda: case.sql("SELECT feature, count(*) AS n FROM events GROUP BY 1")):
        before()
        call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = _case(Path(os.environ.get("BENCH_DATA", "/work/bench-data/sharing")))
    case = forensics.open(path)
    for n in range(args.rounds):
        times: dict[str, float] = {}
        for mode, before in (("default", lambda: None), ("fresh", case.release),
                             ("kept", lambda: None)):
            if mode == "kept":
                case.con                     # noqa: B018 - keep one connection
            times[mode] = statistics.median(_round(case, before) for _ in range(args.repeat))
            case.release()
        print(f"round {n}: " + ", ".join(
            f"{mode} {t * 1000:.0f} ms ({t / times['kept']:.2f}x kept)"
            for mode, t in times.items()), flush=True)
    case.close()


if __name__ == "__main__":
    main()

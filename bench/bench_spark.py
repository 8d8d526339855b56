"""The same case on DuckDB and on a local Spark: the detectors that run on Spark
(``forensics.detect.detectors.SPARK_RULES``), timed back to back in one process.

    .venv/bin/python bench/bench_spark.py [--events 200000] [--runs 3] [--workdir DIR]

Steps: a prompt_regression drill of ``--events`` requests is generated and loaded once;
then, ``--runs`` times each: ``detect(rules=SPARK_RULES)`` on DuckDB, and the same on
Spark (local[2], the session made once and reused; the case's tables shipped to Spark as
Parquet each run). Reported: the session start, the ship, each engine's detect time and
the per-rule times, medians, and the per-event cost of each engine (for the plan in
bench/RESULTS.md). The labels of the two engines are compared (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import forensics  # noqa: E402
from forensics.core.engine import SparkEngine  # noqa: E402
from forensics.detect.detectors import SPARK_RULES  # noqa: E402
from forensics.drills.generator import generate  # noqa: E402


def _labels(case: Any) -> list[tuple[Any, ...]]:
    return case.con.execute("SELECT event_id, label, round(confidence, 6), detail FROM labels "
                            "ORDER BY ALL").fetchall()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    drill = work / "drill"
    path = work / "case.duckdb"
    if not path.exists():
        generate(drill, "prompt_regression", seed=3, events=args.events)
        with forensics.open(path) as case:
            for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
                case.load(drill / name)
    rules = sorted(SPARK_RULES)
    t = time.perf_counter()
    engine = SparkEngine()
    engine.spark.sparkContext.setLogLevel("ERROR")
    session_s = time.perf_counter() - t
    out: dict[str, Any] = {"events": None, "rules": rules, "session_s": round(session_s, 1),
                           "duckdb_s": [], "spark_s": [], "ship_s": [],
                           "per_rule": {"duckdb": [], "spark": []}}
    with forensics.open(path) as case:
        out["events"] = case.count("events")
        for _ in range(args.runs):
            t = time.perf_counter()
            duck = case.detect(rules=rules)
            out["duckdb_s"].append(time.perf_counter() - t)
            out["per_rule"]["duckdb"].append(duck.meta["timings_s"])
            want = _labels(case)
            t = time.perf_counter()
            spark = case.detect(rules=rules, engine=engine)
            out["spark_s"].append(time.perf_counter() - t)
            out["per_rule"]["spark"].append(spark.meta["timings_s"])
            out["ship_s"].append(spark.meta["timings_s"]["(tables to spark)"])
            out["equal_labels"] = _labels(case) == want
    engine.close()
    med = {k: round(statistics.median(out[k]), 2) for k in ("duckdb_s", "spark_s", "ship_s")}
    out["median"] = med
    # detect on Spark ships the tables itself: its time includes the ship
    out["ratio_spark_over_duckdb"] = round(med["spark_s"] / med["duckdb_s"], 2)
    out["us_per_event"] = {"duckdb": round(1e6 * med["duckdb_s"] / out["events"], 2),
                           "spark": round(1e6 * med["spark_s"] / out["events"], 2)}
    out["machine"] = f"{platform.machine()}, {platform.python_version()}"
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()

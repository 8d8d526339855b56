"""Load and drill benchmarks, each step in a fresh process so peak RSS is its own.

    .venv/bin/python bench/bench_load.py                 # 1M load, 200k pandas, 10M drill
    .venv/bin/python bench/bench_load.py --quick         # 100k / 20k / 1M, for a smoke run

Figures: load throughput of a drill-made JSONL audit log by ``forensics load`` against
``CREATE TABLE t AS SELECT * FROM read_json(...)`` on the same file in the same run; the
same events loaded the notebook way (json.loads + pandas.json_normalize); drill generation
rate and peak memory. Medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable

DUCKDB_READ_JSON = """
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute("SET TimeZone='UTC'")
con.execute("CREATE TABLE t AS SELECT * FROM read_json(?, format='newline_delimited', "
            "maximum_object_size=134217728)", [sys.argv[1]])
print(con.execute("SELECT count(*) FROM t").fetchall()[0][0])
"""
FORENSICS_LOAD = """
import forensics, sys
case = forensics.open(sys.argv[2])
row = case.load(sys.argv[1]).rows()[0]
assert row["rows_rejected"] == 0, row
print(row["rows_loaded"])
case.close()
"""
PANDAS_LOAD = """
import json, sys
import pandas as pd
with open(sys.argv[1], encoding="utf-8") as fh:
    records = [json.loads(line) for line in fh]
df = pd.json_normalize(records)
print(len(df))
"""
DRILL = """
import sys
from forensics.drills.generator import generate
s = generate(sys.argv[1], "prompt_regression", seed=11, events=int(sys.argv[2]))
print(s["events"])
"""


def run(code: str, *args: str) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of ``code`` in a fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.Popen([PY, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"benchmark step failed ({status}): {code[:60]}...")
    return elapsed, usage.ru_maxrss / 1024, out.strip()


def fresh(path: Path) -> str:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)
    return str(path)


def median_runs(code: str, src: Path, work: Path, repeat: int) -> tuple[float, float, int]:
    times, peaks, rows = [], [], 0
    for _ in range(repeat):
        t, rss, out = run(code, str(src), fresh(work / "b.duckdb"))
        times.append(t)
        peaks.append(rss)
        rows = int(out.splitlines()[-1])
    return statistics.median(times), max(peaks), rows


def head_lines(src: Path, dst: Path, n: int) -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for i, line in enumerate(fin):
            if i >= n:
                break
            fout.write(line)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--pandas-events", type=int, default=200_000)
    ap.add_argument("--drill-events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    if a.quick:
        a.events, a.pandas_events, a.drill_events, a.repeat = 100_000, 20_000, 1_000_000, 1
    work = Path(a.workdir or tempfile.mkdtemp(prefix="forensics-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; workdir {work}")

    # 1. a drill-made audit log of --events rows (the drill writes requests + tool spans).
    t, rss, _ = run(DRILL, str(work / "drill"), str(int(a.events / 1.1)))
    src_full = work / "drill" / "events.jsonl"
    src = work / "events_1m.jsonl"
    head_lines(src_full, src, a.events)
    size_mb = src.stat().st_size / 1e6
    print(f"audit log: {a.events:,} events, {size_mb:,.0f} MB")

    d_t, d_rss, d_rows = median_runs(DUCKDB_READ_JSON, src, work, a.repeat)
    f_t, f_rss, f_rows = median_runs(FORENSICS_LOAD, src, work, a.repeat)
    assert d_rows == f_rows, (d_rows, f_rows)
    print(f"read_json CTAS   : {d_t:6.2f} s  {d_rows / d_t:10,.0f} events/s  peak {d_rss:6,.0f} MB")
    print(f"forensics load   : {f_t:6.2f} s  {f_rows / f_t:10,.0f} events/s  peak {f_rss:6,.0f} MB")
    print(f"ratio forensics/read_json rate: {d_t / f_t:.2f}x (target >= 0.7x, peak < 2 GB)")

    # 2. the notebook way on --pandas-events.
    small = work / "events_small.jsonl"
    head_lines(src, small, a.pandas_events)
    p_t, p_rss, _ = median_runs(PANDAS_LOAD, small, work, a.repeat)
    s_t, s_rss, _ = median_runs(FORENSICS_LOAD, small, work, a.repeat)
    print(f"json.loads+pandas: {p_t:6.2f} s  peak {p_rss:6,.0f} MB ({a.pandas_events:,} events)")
    print(f"forensics load   : {s_t:6.2f} s  peak {s_rss:6,.0f} MB")
    print(f"speed-up: {p_t / s_t:.1f}x (target >= 5x)")

    # 3. drill generation at scale.
    shutil.rmtree(work / "drill", ignore_errors=True)
    g_times, g_peak, g_rows = [], 0.0, 0
    for _ in range(1 if a.drill_events >= 5_000_000 else a.repeat):
        t, rss, out = run(DRILL, str(work / "drill10"), str(a.drill_events))
        g_times.append(t)
        g_peak = max(g_peak, rss)
        g_rows = int(out)
        shutil.rmtree(work / "drill10", ignore_errors=True)
    g_t = statistics.median(g_times)
    print(f"drill {a.drill_events:,} requests ({g_rows:,} events): {g_t:6.1f} s, "
          f"{g_rows / g_t:,.0f} events/s, peak {g_rss_fmt(g_peak)}")
    if not a.workdir:
        shutil.rmtree(work, ignore_errors=True)


def g_rss_fmt(mb: float) -> str:
    return f"{mb:,.0f} MB"


if __name__ == "__main__":
    main()

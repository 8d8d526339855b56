"""Trace-format benchmark: GenAI spans in OTLP/JSON, made by the drill generator.

    .venv/bin/python bench/bench_formats.py                      # 1M spans, 3 runs each
    .venv/bin/python bench/bench_formats.py --spans 5000000 --no-baseline   # size independence
    .venv/bin/python bench/bench_formats.py --spans 100000 --repeat 1    # a smoke run
    .venv/bin/python bench/bench_formats.py --write              # also update RESULTS.md

Figures: ``forensics load`` of the OTLP file (format detected, every span flattened into
the canonical tables) against ``CREATE TABLE t AS SELECT * FROM read_json(...)`` of the
same file into a DuckDB file, in the same run; each step in a fresh process so its peak
RSS is its own; medians of ``--repeat`` runs. Targets: rate >= 0.5x read_json's, peak RSS
under 3 GB whatever the file size.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import DUCKDB_READ_JSON, FORENSICS_LOAD, fresh, run

SPANS_PER_REQUEST = 1.21  # the drill writes each request's LLM span and, for tool calls, one more
DRILL = """
import sys
from forensics.drills.generator import generate
s = generate(sys.argv[1], "prompt_regression", seed=11, events=int(sys.argv[2]), format="otlp")
print(s["events"])
"""
SECTION = "## Trace formats"


@dataclass
class Figures:
    median: float
    runs: list[float]
    peak: float
    rows: int


def measure(code: str, src: Path, work: Path, repeat: int) -> Figures:
    times, peaks, out = [], [], ""
    for _ in range(repeat):
        t, rss, out = run(code, str(src), fresh(work / "b.duckdb"))
        times.append(t)
        peaks.append(rss)
    return Figures(statistics.median(times), [round(t, 1) for t in times], max(peaks),
                   int(out.splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default="/work/bench-data/formats")
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    ap.add_argument("--no-baseline", action="store_true",
                    help="measure forensics only (read_json of a large file may not fit in RAM)")
    a = ap.parse_args()
    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="forensics-fmt-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}")
    drill = work / f"drill-{a.spans}"
    src = drill / "events.otlp.jsonl"
    if not src.exists():
        run(DRILL, str(drill), str(int(a.spans / SPANS_PER_REQUEST)))
    size_gb = src.stat().st_size / 1e9
    base = None if a.no_baseline else measure(DUCKDB_READ_JSON, src, work, a.repeat)
    ours = measure(FORENSICS_LOAD, src, work, a.repeat)
    spans = ours.rows
    o_rate = spans / ours.median
    rows = [f"| forensics load (otlp) | {ours.median:.1f} | {ours.runs} | "
            f"{o_rate:,.0f} | {ours.peak:,.0f} |"]
    verdict = f"peak RSS **{ours.peak / 1024:.2f} GB** (target < 3 GB)."
    if base is not None:
        b_rate = spans / base.median
        rows.insert(0, f"| read_json CTAS (baseline) | {base.median:.1f} | {base.runs} | "
                       f"{b_rate:,.0f} | {base.peak:,.0f} |")
        verdict = (f"Rate ratio forensics / read_json: **{o_rate / b_rate:.2f}x** "
                   f"(target >= 0.5x); " + verdict)
    flag = " --no-baseline" if a.no_baseline else ""
    text = "\n".join([
        f"### {spans:,} spans, {size_gb:.2f} GB of OTLP/JSON",
        "",
        f"Machine: {machine}; command: `.venv/bin/python bench/bench_formats.py --spans "
        f"{a.spans}{flag}`; medians of {a.repeat} runs, each in a fresh process.",
        "",
        "| step | median s | runs s | spans/s | peak RSS MB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        verdict,
    ])
    print(text)
    if a.write:
        write_results(text, a.spans)


def write_results(text: str, spans: int) -> None:
    """Put ``text`` under this benchmark's section of RESULTS.md, replacing an earlier
    figure for the same size."""
    path = Path(__file__).resolve().parent / "RESULTS.md"
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if SECTION not in doc:
        doc = doc.rstrip("\n") + f"\n\n{SECTION}\n"
    head, _, rest = doc.partition(SECTION)
    nxt = re.search(r"^## ", rest, flags=re.M)
    body, tail = (rest[:nxt.start()], rest[nxt.start():]) if nxt else (rest, "")
    blocks = [b for b in re.split(r"(?=^### )", body, flags=re.M) if b.strip()]
    blocks = [b for b in blocks if f"--spans {spans}`" not in b
              and f"--spans {spans} --no-baseline`" not in b]
    blocks.append(text + "\n")
    path.write_text(head + SECTION + "\n\n" + "\n".join(b.strip("\n") + "\n" for b in blocks)
                    + ("\n" + tail if tail else ""), encoding="utf-8")


if __name__ == "__main__":
    main()

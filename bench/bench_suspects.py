"""Root-cause benchmarks: accuracy of ``suspects`` on drills, speed at 10M events.

    .venv/bin/python bench/bench_suspects.py accuracy [--events 120000] [--seeds 5]
    .venv/bin/python bench/bench_suspects.py speed [--case PATH] [--events 10000000]
    .venv/bin/python bench/bench_suspects.py all --write     # and update bench/RESULTS.md

Accuracy: every scenario x seed is generated with ``forensics.drills.generator``, loaded (events,
changes, feedback), ``case.detect()`` is run when ``forensics.detect.detectors`` exists, and
``case.suspects()`` ranks the changes (default pattern: any bad signal). Reported: the
rank of the planted root cause and of the decoy, and whether the decoy was blamed (top).
Speed: ``suspects()`` and ``compare(by=prompt_version)`` on a 10M-request drill case, each
timed in a fresh process (median of ``--repeat``), with the process's peak RSS.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Root cause"
SCENARIOS = ("prompt_regression", "retrieval_leak", "model_upgrade", "agent_tool")
PY = sys.executable

ONE_DRILL = """
import json, sys, time, forensics
from forensics.drills.generator import generate
scen, seed, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
generate(out, scen, seed=seed, events=n)
case = forensics.open(out + "/case.duckdb")
for f in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
    case.load(out + "/" + f)
detect = hasattr(case, "detect")
if detect:
    case.detect()
t = time.perf_counter()
r = case.suspects()
elapsed = time.perf_counter() - t
key = json.load(open(out + "/answer_key.json"))
def rank(ch):
    for row in r.rows():
        if (row["feature"], row["to_version"]) == (ch["feature"], ch["to_version"]):
            return row["rank"], row
    return None, None
root_rank, root = rank(key["root_cause"])
decoy_rank, decoy = rank(key["decoy"])
print(json.dumps({"scenario": scen, "seed": seed, "root_rank": root_rank,
                  "decoy_rank": decoy_rank, "candidates": r.df.height, "detect": detect,
                  "onset": str(r.meta["onset"]), "key_onset": key["onset"],
                  "root_verdict": root and root["verdict"], "root_effect": root and root["effect"],
                  "root_q": root and root["q_value"],
                  "decoy_verdict": decoy and decoy["verdict"], "seconds": elapsed}))
"""

SPEED = """
import json, resource, sys, time, forensics
case = forensics.open(sys.argv[1], read_only=True)
what = sys.argv[2]
t = time.perf_counter()
if what == "suspects":
    r = case.suspects()
    top = r.rows()[0]["change_id"]
else:
    r = case.compare(by="prompt_version", a="v12", b="v13", where="feature = 'support_chat'")
    top = r.meta["hours_compared"]
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "top": top,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(lines[-1])


def accuracy(events: int, seeds: int, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for scen in SCENARIOS:
        for seed in range(1, seeds + 1):
            out = workdir / f"{scen}-{seed}"
            t = time.perf_counter()
            row = _run(ONE_DRILL, scen, str(seed), str(events), str(out))
            row["total_seconds"] = time.perf_counter() - t
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def speed(case: str, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for what in ("suspects", "compare"):
        runs = [_run(SPEED, case, what) for _ in range(repeat)]
        out[what] = {"median_s": statistics.median(r["seconds"] for r in runs),
                     "runs_s": [round(r["seconds"], 2) for r in runs],
                     "peak_rss_mb": max(r["rss_mb"] for r in runs), "top": runs[0]["top"]}
        print(what, json.dumps(out[what]), flush=True)
    return out


def make_big_case(path: Path, events: int) -> None:
    code = """
import sys, forensics
from forensics.drills.generator import generate
d = sys.argv[1] + ".drill"
generate(d, "prompt_regression", seed=11, events=int(sys.argv[2]))
c = forensics.open(sys.argv[1])
for f in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
    c.load(d + "/" + f)
print("{}")
"""
    _run(code, str(path), str(events))


def render(acc: list[dict[str, Any]] | None, spd: dict[str, Any] | None,
           events: int, case_rows: int | None) -> str:
    lines = [SECTION, "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; command: `.venv/bin/python bench/bench_suspects.py "
             "all --write`.", ""]
    if acc:
        top = sum(r["root_rank"] == 1 for r in acc)
        blamed = sum(r["decoy_rank"] == 1 for r in acc)
        detect = "with `case.detect()` labels" if acc[0]["detect"] else \
            "without detectors (no labels: is_bad = error, flagged moderation " \
            "or negative feedback only)"
        lines += [f"### Accuracy: {len(acc)} drills of {events:,} requests, {detect}", "",
                  f"Planted change ranked first in **{top}/{len(acc)}**; decoy ranked first in "
                  f"**{blamed}/{len(acc)}** (target: >= 19/20 and 0).", "",
                  "| scenario | seed | root rank | decoy rank | root verdict | root effect | "
                  "root q | onset found | suspects s |", "|---|---|---|---|---|---|---|---|---|"]
        for r in acc:
            eff = "" if r["root_effect"] is None else f"{100 * r['root_effect']:+.2f} pts"
            q = "" if r["root_q"] is None else f"{r['root_q']:.2g}"
            lines.append(f"| {r['scenario']} | {r['seed']} | {r['root_rank']} | "
                         f"{r['decoy_rank']} | {r['root_verdict']} | {eff} | {q} | "
                         f"{r['onset'] if r['onset'] != 'None' else 'no'} | "
                         f"{r['seconds']:.2f} |")
        lines.append("")
    if spd:
        lines += [f"### Speed: 10M-request drill case ({case_rows or '?'} event rows), "
                  "fresh process per run", "",
                  "| call | median s | runs s | peak RSS MB | target |", "|---|---|---|---|---|"]
        for what, target in (("suspects", "< 10 s"), ("compare", "< 5 s")):
            s = spd[what]
            lines.append(f"| {what} | {s['median_s']:.2f} | {s['runs_s']} | "
                         f"{s['peak_rss_mb']:.0f} | {target} |")
        lines.append("")
    return "\n".join(lines)


def write_section(text: str) -> None:
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    new = pattern.sub(text.rstrip() + "\n", old) if SECTION in old else \
        old.rstrip() + "\n\n" + text.rstrip() + "\n"
    RESULTS.write_text(new, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["accuracy", "speed", "all"])
    ap.add_argument("--events", type=int, default=120_000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--case", default=None, help="existing 10M drill case (else generated)")
    ap.add_argument("--big-events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    if importlib.util.find_spec("forensics.detect.detectors") is None:
        print("forensics.detect.detectors not found: ranking on is_bad only", file=sys.stderr)
    acc = spd = None
    rows = None
    with tempfile.TemporaryDirectory(prefix="bench-suspects-") as tmp:
        if args.what in ("accuracy", "all"):
            acc = accuracy(args.events, args.seeds, Path(tmp))
        if args.what in ("speed", "all"):
            case = Path(args.case) if args.case else Path(tmp) / "big.duckdb"
            if not args.case:
                make_big_case(case, args.big_events)
            import duckdb

            con = duckdb.connect(str(case), read_only=True)
            rows = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
            con.close()
            spd = speed(str(case), args.repeat)
    text = render(acc, spd, args.events, rows)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()

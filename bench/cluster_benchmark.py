"""Detect and cluster (issue 4): quality on real labelled outputs, speed at 10k / 100k.

    .venv/bin/python bench/cluster_benchmark.py              # quality + scale, print tables
    .venv/bin/python bench/cluster_benchmark.py --write      # and update bench/RESULTS.md
    .venv/bin/python bench/cluster_benchmark.py quality      # only the ARI / NMI tables
    .venv/bin/python bench/cluster_benchmark.py scale --sizes 10000 100000 --repeat 3

Quality: ``bench/cluster_corpus.py`` assembles >= 5,000 real bad outputs in 7 categories
from 11 corpus sources (``../shared/corpus/texts``), each in an event with log metadata.
The events file is loaded into a fresh case as a real file, a reviewer's "bad" verdict on
every event is imported (the set is a review queue of known-bad outputs; the verdict says
nothing about the category), then ``case.detect()`` and ``case.cluster()`` run with their
defaults. Reported: adjusted Rand index and NMI of the clusters against the true
categories, overall and per source, detector coverage per source, and the same for the
alternative single k-means method and for each seed.

Scale: the assembled set replicated to N events (new ids; ``--unique`` also makes every
replica's text distinct by appending a request number, so that no two texts are equal),
loaded, then detect + cluster timed in one fresh process each (median of ``--repeat``),
with that process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Detect and cluster (issue 4)"
WORK = Path(os.environ.get("FORENSICS_BENCH_DATA", "/work/bench-data/detect"))
PY = sys.executable

QUALITY = """
import json, sys, time, forensics, polars as pl
from sklearn.metrics import adjusted_rand_score as ari, normalized_mutual_info_score as nmi
out, seeds, method = sys.argv[1], int(sys.argv[2]), sys.argv[3]
case = forensics.open(out + "/case.duckdb")
case.load(out + "/events.jsonl")
case.import_labels(out + "/review.csv")
t = time.perf_counter(); det = case.detect(); t_det = time.perf_counter() - t
truth = pl.read_parquet(out + "/truth.parquet")
labs = case.sql("SELECT event_id, list(DISTINCT label) AS labels FROM labels WHERE source = 'rule' "
                "AND label <> 'output_language' GROUP BY 1", row_cap=None).df
runs = []
for seed in range(seeds):
    t = time.perf_counter()
    r = case.cluster(seed=seed, method=method)
    t_cl = time.perf_counter() - t
    m = case.sql("SELECT event_id, cluster_id FROM cluster_members WHERE run_id = $r",
                 r=r.meta["run_id"], row_cap=None).df
    runs.append({"seed": seed, "run": r.meta["run_id"], "clusters": r.meta["clusters"],
                 "seconds": t_cl, "members": m, "rows": r.rows()})
df = truth.join(runs[0]["members"], on="event_id").join(labs, on="event_id", how="left")
def score(part):
    return {"events": part.height, "ari": ari(part["category"], part["cluster_id"]),
            "nmi": nmi(part["category"], part["cluster_id"])}
per_source = []
for (src,), part in df.group_by(["source"], maintain_order=True):
    cat = part["category"][0]
    top = part.group_by("cluster_id").len().sort("len", descending=True).row(0)
    in_top = df.filter(pl.col("cluster_id") == top[0])
    per_source.append({
        "source": src, "category": ", ".join(sorted(set(part["category"]))),
        "events": part.height, "clusters": part["cluster_id"].n_unique(),
        "in_main_cluster": top[1] / part.height,
        "main_cluster_purity": (in_top["category"] == cat).mean(),
        "detected": part["labels"].is_not_null().mean(),
        "ari_within": (ari(part["category"], part["cluster_id"])
                       if part["category"].n_unique() > 1 else None),
        "ari_without": score(df.filter(pl.col("source") != src))["ari"]})
seeds_out = []
for run in runs:
    d = truth.join(run["members"], on="event_id")
    seeds_out.append({"seed": run["seed"], "clusters": run["clusters"], "seconds": run["seconds"],
                      **score(d)})
print(json.dumps({"overall": score(df), "seeds": seeds_out, "per_source": per_source,
                  "detect_seconds": t_det, "method": method,
                  "clusters": [{k: r[k] for k in ("cluster_id", "title", "size", "category")}
                               for r in runs[0]["rows"]],
                  "labels": det.rows()}, default=str))
"""

SCALE = """
import json, resource, sys, time, forensics
case = forensics.open(sys.argv[1])
t = time.perf_counter(); det = case.detect(); t_det = time.perf_counter() - t
t = time.perf_counter(); cl = case.cluster(); t_cl = time.perf_counter() - t
print(json.dumps({"detect_s": t_det, "cluster_s": t_cl, "total_s": t_det + t_cl,
                  "clusters": cl.meta["clusters"], "bad_events": det.meta["bad_events"],
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

LOAD = """
import json, sys, forensics
case = forensics.open(sys.argv[1])
row = case.load(sys.argv[2]).rows()[0]
case.import_labels(sys.argv[3])
print(json.dumps({"rows": row["rows_loaded"]}))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([PY, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(lines[-1])


def _fresh(path: Path) -> Path:
    for p in (path, Path(str(path) + ".wal")):
        p.unlink(missing_ok=True)
    return path


def build_corpus(outdir: Path) -> dict[str, Any]:
    from cluster_corpus import write

    return write(outdir)


def quality(seeds: int) -> dict[str, Any]:
    outdir = WORK / "corpus"
    counts = build_corpus(outdir)
    result = {}
    for method in ("families", "kmeans"):
        _fresh(outdir / "case.duckdb")
        result[method] = _run(QUALITY, str(outdir), str(seeds if method == "families" else 1),
                              method)
        print(method, json.dumps(result[method]["overall"]), flush=True)
    result["counts"] = counts
    return result


def replicate(src: Path, dst: Path, n: int, unique: bool) -> Path:
    """Write ``n`` events by cycling ``src`` with new ids (and, with ``unique``, a request
    number appended to every replica's text)."""
    lines = src.read_text(encoding="utf-8").splitlines()
    review = ["event_id,label"]
    with dst.open("w", encoding="utf-8") as fh:
        for i in range(n):
            ev = json.loads(lines[i % len(lines)])
            rep = i // len(lines)
            ev["event_id"] = f"{ev['event_id']}-{rep}"
            ev["trace_id"] = ev["event_id"] + "t"
            if unique and rep and ev.get("output_text"):
                ev["output_text"] += f" (ref {rep:04d})"
            fh.write(json.dumps(ev, ensure_ascii=False) + "\n")
            review.append(f"{ev['event_id']},bad")
    dst.with_suffix(".review.csv").write_text("\n".join(review) + "\n", encoding="utf-8")
    return dst


def scale(sizes: list[int], repeat: int, unique: bool) -> list[dict[str, Any]]:
    src = WORK / "corpus" / "events.jsonl"
    if not src.exists():
        build_corpus(WORK / "corpus")
    rows = []
    for n in sizes:
        tag = f"{n}{'-unique' if unique else ''}"
        events = replicate(src, WORK / f"scale-{tag}.jsonl", n, unique)
        base = WORK / f"scale-{tag}.duckdb"
        _fresh(base)
        _run(LOAD, str(base), str(events), str(events.with_suffix(".review.csv")))
        runs = []
        for _ in range(repeat):
            work = WORK / f"scale-{tag}-run.duckdb"
            _fresh(work)
            work.write_bytes(base.read_bytes())
            runs.append(_run(SCALE, str(work)))
        row = {"events": n, "unique_texts": unique,
               "detect_s": statistics.median(r["detect_s"] for r in runs),
               "cluster_s": statistics.median(r["cluster_s"] for r in runs),
               "total_s": statistics.median(r["total_s"] for r in runs),
               "runs_total_s": [round(r["total_s"], 1) for r in runs],
               "peak_rss_mb": max(r["rss_mb"] for r in runs),
               "clusters": runs[0]["clusters"]}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# -- RESULTS.md -----------------------------------------------------------------------------

def _f(x: Any, nd: int = 3) -> str:
    return "" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def markdown(q: dict[str, Any] | None, s: list[dict[str, Any]] | None, cmd: str) -> str:
    lines = [SECTION, "", f"Command: `{cmd}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, shared with other jobs (load varies).", ""]
    if q:
        fam, km = q["families"], q["kmeans"]
        total = sum(c["len"] for c in q["counts"]["counts"])
        lines += [f"### Clustering real bad outputs ({total:,} events, 7 categories, "
                  f"11 sources)", "",
                  "Default method (`families`: group by detector family, split a family only "
                  "when silhouette >= 0.5 and each part >= 5% of events):", "",
                  "| method | clusters | ARI | NMI |", "|---|---|---|---|"]
        for name, res in (("families (default)", fam), ("kmeans (silhouette k)", km)):
            o = res["overall"]
            lines.append(f"| {name} | {len(res['clusters'])} | {_f(o['ari'])} | {_f(o['nmi'])} |")
        lines += ["", "Seeds (default method): " + ", ".join(
            f"seed {r['seed']}: ARI {_f(r['ari'])}, {r['clusters']} clusters"
            for r in fam["seeds"]), "",
            "Per source (default method). *in main cluster*: share of the source's events in "
            "its largest cluster; *purity*: share of that cluster with the source's category; "
            "*detected*: share with any detector label; *ARI w/o*: overall ARI with the "
            "source left out.", "",
            "| source | category | events | clusters | in main cluster | purity | detected | "
            "ARI within | ARI w/o |", "|---|---|---|---|---|---|---|---|---|"]
        for r in fam["per_source"]:
            lines.append(f"| {r['source']} | {r['category']} | {r['events']:,} | "
                         f"{r['clusters']} | {_f(r['in_main_cluster'], 2)} | "
                         f"{_f(r['main_cluster_purity'], 2)} | {_f(r['detected'], 2)} | "
                         f"{_f(r['ari_within'])} | {_f(r['ari_without'])} |")
        lines += ["", "Clusters found (default method):", "", "| id | title | size | category |",
                  "|---|---|---|---|"]
        lines += [f"| {c['cluster_id']} | {c['title']} | {c['size']:,} | {c['category']} |"
                  for c in fam["clusters"]]
        lines += [""]
    if s:
        lines += ["### Speed: detect + cluster", "",
                  "| events | texts | detect s | cluster s | total s (median) | runs | "
                  "peak RSS MB | clusters |", "|---|---|---|---|---|---|---|---|"]
        for r in s:
            texts = "all distinct" if r["unique_texts"] else "replicated"
            lines.append(f"| {r['events']:,} | {texts} | {_f(r['detect_s'], 1)} | "
                         f"{_f(r['cluster_s'], 1)} | "
                         f"{_f(r['total_s'], 1)} | {r['runs_total_s']} | "
                         f"{_f(r['peak_rss_mb'], 0)} | {r['clusters']} |")
        lines += [""]
    return "\n".join(lines)


def write_results(text: str) -> None:
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(text.rstrip() + "\n\n", current)
    else:
        current = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    RESULTS.write_text(current, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=["all", "quality", "scale"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    q = quality(args.seeds) if args.what in ("all", "quality") else None
    s = None
    if args.what in ("all", "scale"):
        s = scale(args.sizes, args.repeat, unique=False) + \
            scale(args.sizes[-1:], args.repeat, unique=True)
    text = markdown(q, s, "python bench/cluster_benchmark.py " + " ".join(sys.argv[1:]))
    print(text)
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
    if args.write:
        write_results(text)


if __name__ == "__main__":
    main()

"""Detect and cluster: quality on real labelled outputs, speed at 10k / 100k.

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
from bench_suspects import _run  # noqa: E402  (one JSON line from a fresh interpreter)

RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Detect and cluster"
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
    cat = part.group_by("category").len().sort("len", descending=True)["category"][0]
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

BASELINE = """
import json, sys, time, forensics
from forensics.detect import cluster as C
from sklearn.feature_extraction.text import TfidfVectorizer
case = forensics.open(sys.argv[1])
case.con.execute("SET enable_progress_bar = false")
s = C.Settings()
n = C._docs(case, "is_bad", s)
t = time.perf_counter(); m, terms, _ = C.text_matrix(case, n, s); ours = time.perf_counter() - t
texts = [r[0] for r in case.con.execute("SELECT text FROM _cl_texts ORDER BY u").fetchall()]
t = time.perf_counter()
v = TfidfVectorizer(ngram_range=(1, 2), min_df=3, max_df=0.95, max_features=50000,
                    sublinear_tf=True, dtype="float32").fit_transform(texts)
base = time.perf_counter() - t
print(json.dumps({"texts": len(texts), "duckdb_s": ours, "sklearn_s": base}))
"""

LOAD = """
import json, sys, forensics
case = forensics.open(sys.argv[1])
row = case.load(sys.argv[2]).rows()[0]
case.import_labels(sys.argv[3])
print(json.dumps({"rows": row["rows_loaded"]}))
"""


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


def detectors() -> list[dict[str, Any]]:
    """Recall and false-positive rate of each detector on real labelled outputs: the
    figures ``tests/test_detect_corpus.py`` prints (and asserts lower bounds on)."""
    from cluster_corpus import CORPUS

    env = {**os.environ, "FORENSICS_CORPUS": str(CORPUS.parent)}
    out = subprocess.run([PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "tests/test_detect_corpus.py"], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=False)
    rows = []
    test = ""
    for line in out.stdout.splitlines():
        found = re.search(r"test_detect_corpus\.py::(\w+)", line)
        test = found.group(1) if found else test
        m = re.match(r"(\w+): recall (\d+)/(\d+), false positives (\d+)/(\d+)", line.strip())
        if m:
            label, tp, pos, fp, neg = m.groups()
            rows.append({"label": label, "recall": f"{tp}/{pos}", "recall_rate": int(tp) / int(pos),
                         "false_positives": f"{fp}/{neg}", "fp_rate": int(fp) / max(int(neg), 1)})
        m = re.match(r"over_refusal: precision ([\d.]+) of (\d+)", line.strip())
        if m:
            rows.append({"label": "over_refusal (precision)", "recall": f"{m.group(1)} of "
                         f"{m.group(2)} flagged", "recall_rate": float(m.group(1)),
                         "false_positives": "", "fp_rate": None})
    print(json.dumps({"detectors": rows, "pytest": out.stdout.strip().splitlines()[-1:]}),
          flush=True)
    return rows


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
        base_run = WORK / f"scale-{tag}-run.duckdb"
        _fresh(base_run)
        base_run.write_bytes(base.read_bytes())
        _run(SCALE, str(base_run))          # labels in place, then the baseline
        baseline = _run(BASELINE, str(base_run))
        row = {"events": n, "unique_texts": unique, "baseline": baseline,
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


DETECTOR_SOURCES = {
    "refusal": "xstest, 2,250 completions of 5 models (human labels)",
    "leak": "decodingtrust_privacy, 1,799 (planted PII in the output); pii_leak or secret_leak",
    "system_prompt_leak": "tensor_trust, 230 (human-curated extractions); stand-in system "
                          "prompt holding the real access code",
    "truncated": "decodingtrust_toxicity, 1,196 (label: finish_reason), with the finish reason",
    "truncated_without_finish_reason": "the same outputs with the finish reason removed: the "
                                       "mid-sentence heuristic alone",
    "malformed_json": "structured_rag, 784 (benchmark parser); expected_format json, no schema",
    "tool_call_error": "bfcl, failed cases (decoder failed vs checker errors on parsed calls)",
    "wrong_language": "language_confusion, strict derived label (wrong vs ok)",
    "ungrounded": "faithbench, Unwanted vs Consistent summaries with their source as context",
}


NOTES = """Notes.

- The loss is where no detector fires: the group of outputs no rule sees holds
  hallucinations (HaluEval and TofuEval carry no retrieved context, so nothing can check
  them; in a real case they arrive as reviewer labels or negative feedback), harmful
  compliance without a guardrail verdict (XSTest; JBB responses Llama Guard did not flag),
  JBB "not jailbroken" responses that are not refusals, BFCL calls only BFCL's strict
  decoder rejects, and Tensor Trust extractions that paraphrase the defence. Labelled events
  cluster by their detector family with high purity (table above).
- History, stated so the figure can be judged: with one split rule for every group
  (silhouette >= 0.5) the ARI was 0.721, under the 0.75 target. The group no detector
  labelled shares no signal by construction, so it is now split where the silhouette shows
  weak structure (>= 0.25, the lower bound of Kaufman & Rousseeuw's "weak structure", the
  same scale as the 0.5 for families); the families keep 0.5. That one rule, chosen for
  that reason and not searched over, separates harmful compliance ("Sure, here is ...")
  from hallucinated summaries and answers. Leaving out either source that mixes refusal and
  harmful compliance (XSTest or JBB) raises the ARI; leaving out language_confusion lowers
  it (per-source table).
- Some truth labels and detectors disagree on purpose: 75 HaluEval "hallucinations" are
  capability refusals ("As an AI language model, I cannot browse...") and are labelled
  refusal; JBB's "not jailbroken" is used as the refusal category though ~20% are not
  refusals.
- Per source: a single-category source has no within-source ARI; the share of its events in
  its largest cluster and that cluster's purity say how it fared. *ARI w/o* shows how much
  each source costs the overall figure.
- What the events carry is what a log would: model, input where the source has it, finish
  reason where the source has it, requested language, retrieved passage (FaithBench), expected
  format and schema (StructuredRAG, from its prompt templates), tools (BFCL), the guardrail
  verdict (JBB's Llama Guard). Constructed, documented in `bench/cluster_corpus.py`: the
  StructuredRAG prompt and schema, the Tensor Trust system prompt (a generic defence holding
  the real access code), the FaithBench summarisation instruction. A reviewer verdict "bad"
  on every event stands for the review queue (it names no category). The true category and
  the source never reach the case.
"""


def markdown(q: dict[str, Any] | None, s: list[dict[str, Any]] | None,
             d: list[dict[str, Any]] | None, cmd: str) -> str:
    lines = [SECTION, "", f"Command: `{cmd}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, shared with other jobs (load average "
             f"{os.getloadavg()[0]:.1f} at the end).", ""]
    if d:
        lines += ["### Detectors on real labelled outputs", "",
                  "From `tests/test_detect_corpus.py` (one rule at a time, default options).", "",
                  "| detector | recall | false positives | data |", "|---|---|---|---|"]
        for r in d:
            key = r["label"].split(" ")[0]
            fp = "" if r["fp_rate"] is None else f" ({_f(r['fp_rate'], 3)})"
            lines.append(f"| {r['label']} | {r['recall']} ({_f(r['recall_rate'], 2)}) | "
                         f"{r['false_positives']}{fp} | {DETECTOR_SOURCES.get(key, '')} |")
        lines += [""]
    if q:
        fam, km = q["families"], q["kmeans"]
        total = sum(c["len"] for c in q["counts"]["counts"])
        lines += [f"### Clustering real bad outputs ({total:,} events, 7 categories, "
                  f"11 sources)", "",
                  "Default method (`families`: group by detector family, split a family only "
                  "when silhouette >= 0.5, the group no detector labelled when >= 0.25, and each "
                  "part >= 5% of events):", "",
                  "| method | clusters | ARI | NMI |", "|---|---|---|---|"]
        for name, res in (("families (default)", fam), ("kmeans (silhouette k)", km)):
            o = res["overall"]
            lines.append(f"| {name} | {len(res['clusters'])} | {_f(o['ari'])} | {_f(o['nmi'])} |")
        lines += ["", "Seeds (default method): " + ", ".join(
            f"seed {r['seed']}: ARI {_f(r['ari'])}, {r['clusters']} clusters"
            for r in fam["seeds"]), "",
            "Per source (default method). *in main cluster*: share of the source's events in "
            "its largest cluster; *purity*: share of that cluster with the source's (majority) "
            "category; "
            "*detected*: share with any detector label; *ARI w/o*: overall ARI with the "
            "source left out.", "",
            "| source | category | events | clusters | in main cluster | purity | detected | "
            "ARI within | ARI w/o |", "|---|---|---|---|---|---|---|---|---|"]
        for r in fam["per_source"]:
            lines.append(f"| {r['source']} | {r['category']} | {r['events']:,} | "
                         f"{r['clusters']} | {_f(r['in_main_cluster'], 2)} | "
                         f"{_f(r['main_cluster_purity'], 2)} | {_f(r['detected'], 2)} | "
                         f"{_f(r['ari_within'])} | {_f(r['ari_without'])} |")
        lines += ["", NOTES.rstrip(), "", "Clusters found (default method):", "",
                  "| id | title | size | category |", "|---|---|---|---|"]
        lines += [f"| {c['cluster_id']} | {c['title']} | {c['size']:,} | {c['category']} |"
                  for c in fam["clusters"]]
        lines += [""]
    if s:
        lines += ["### Speed: detect + cluster", "",
                  "Each run a fresh process on a copy of the loaded case; median of the runs. "
                  "*replicated*: the 10,446 texts cycled with new ids (identical texts are "
                  "vectorised once); *all distinct*: every replica's text made unique. "
                  "Baseline: the clustering text matrix (TF-IDF over words and bigrams) by "
                  "DuckDB counting vs scikit-learn's `TfidfVectorizer` on the same distinct "
                  "texts, same process.", "",
                  "| events | texts | detect s | cluster s | total s (median) | runs | "
                  "peak RSS MB | clusters | TF-IDF DuckDB s | TF-IDF sklearn s | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in s:
            b = r["baseline"]
            texts = "all distinct" if r["unique_texts"] else "replicated"
            lines.append(f"| {r['events']:,} | {texts} | {_f(r['detect_s'], 1)} | "
                         f"{_f(r['cluster_s'], 1)} | "
                         f"{_f(r['total_s'], 1)} | {r['runs_total_s']} | "
                         f"{_f(r['peak_rss_mb'], 0)} | {r['clusters']} | "
                         f"{_f(b['duckdb_s'], 1)} | {_f(b['sklearn_s'], 1)} | "
                         f"{b['sklearn_s'] / b['duckdb_s']:.1f}x |")
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
    d = detectors() if args.what in ("all", "quality") else None
    q = quality(args.seeds) if args.what in ("all", "quality") else None
    s = None
    if args.what in ("all", "scale"):
        s = scale(args.sizes, args.repeat, unique=False) + \
            scale(args.sizes[-1:], args.repeat, unique=True)
    text = markdown(q, s, d, "python bench/cluster_benchmark.py " + " ".join(sys.argv[1:]))
    print(text)
    print(f"(benchmark took {time.perf_counter() - start:.0f} s)")
    if args.write:
        write_results(text)


if __name__ == "__main__":
    main()

"""Impact and post-mortem benchmarks: impact speed and approximate-distinct error
on a large drill case, and the coverage of sampled-review intervals on drills.

    .venv/bin/python bench/bench_impact.py speed [--events 10000000] [--repeat 3]
    .venv/bin/python bench/bench_impact.py estimate [--events 300000] [--reps 100]
    .venv/bin/python bench/bench_impact.py synthetic [--reps 100]
    .venv/bin/python bench/bench_impact.py all

Speed: a ``prompt_regression`` drill of ``--events`` requests is generated and loaded once
under ``/work/bench-data/report/`` (or ``$BENCH_DATA``); its answer key's affected events
and 1 in 40 earlier events of the feature are labelled ``over_refusal`` (the detectors are
another stage). Each call is timed in a fresh process (median of ``--repeat``): exact
``impact`` for the label, by plan, restricted to the root-cause change, and with
``approx=True``; the baseline is the bare ``count(DISTINCT user_id)`` of the labelled
events in the same case. Modules are imported before the clock starts (a one-off of about
a second per process); the data is cold (a fresh process each run). The
approximate-distinct error is measured against the exact count on every (feature,
locale, day) subset of the case.

Estimate: for each scenario a drill is generated and loaded; the flagged population is
what a detector with false positives would flag: the answer key's affected events, every
event of the pattern's feature with a bad signal (error, moderation flag, negative
feedback) and 1 in 50 of the others; strata are clusters by signal. For each sample size
and repetition, ``case.review_sample`` picks the events to review, the reviewer verdicts
are the answer key (affected or not), and ``case.estimate_impact`` gives 95% intervals
for the truly affected events and users, which are checked against the answer key.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BENCH_DATA", "/work/bench-data/report"))
SCENARIOS = ("prompt_regression", "retrieval_leak", "model_upgrade", "agent_tool")
SIZES = (50, 200, 1000)
PY = sys.executable

PREPARE = """
import json, sys, forensics
from pathlib import Path
from forensics.drills.generator import generate
scen, n, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
if not (out / "case.duckdb").exists():
    generate(out, scen, seed=1, events=n)
    case = forensics.open(out / "case.tmp.duckdb")
    for f in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
        case.load(out / f)
    key = json.loads((out / "answer_key.json").read_text())
    label, feature = key["pattern"]["labels"][-1], key["pattern"]["feature"]
    case.con.execute("INSERT INTO labels SELECT column0, ?, 'rule', 1, NULL, 'bench' FROM "
                     "read_csv(?, header=false, columns={'column0': 'VARCHAR'})",
                     [label, str(out / "affected_events.txt")])
    case.con.execute("INSERT INTO labels SELECT event_id, ?, 'rule', 1, NULL, 'bench' FROM "
                     "events WHERE feature = ? AND ts < CAST(? AS TIMESTAMP) "
                     "AND hash(event_id) % 40 = 0",
                     [label, feature, key["onset"].rstrip("Z").replace("T", " ")])
    case.close()
    (out / "case.tmp.duckdb").rename(out / "case.duckdb")
print(json.dumps({"case": str(out / "case.duckdb")}))
"""

SPEED = """
import json, resource, sys, time, forensics
import forensics.cause.changes, forensics.impact.exact          # imports are not what is measured
case = forensics.open(sys.argv[1], read_only=True)
what, label, change = sys.argv[2], sys.argv[3], sys.argv[4]
case.sql("SELECT 1")
t = time.perf_counter()
if what == "baseline":
    users = case.sql("SELECT count(DISTINCT user_id) AS u FROM events WHERE event_id IN "
                     "(SELECT event_id FROM labels WHERE label = $l)", l=label).rows()[0]["u"]
elif what == "impact":
    users = case.impact(label).meta["users"]
elif what == "impact_by_plan":
    users = case.impact(label, by="plan").meta["users"]
elif what == "impact_change":
    users = case.impact(label, change=change).meta["users"]
else:
    users = case.impact(label, approx=True).meta["users"]
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "users": users,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

APPROX = """
import json, sys, forensics
case = forensics.open(sys.argv[1], read_only=True)
df = case.sql(\"\"\"
SELECT feature, locale, date_trunc('day', ts) AS day, count(DISTINCT user_id) AS exact,
       approx_count_distinct(user_id) AS approx
FROM event_facts GROUP BY ALL HAVING count(DISTINCT user_id) >= 100\"\"\", row_cap=None).df
err = ((df["approx"] - df["exact"]) / df["exact"]).to_list()
print(json.dumps({"subsets": len(err), "errors": err,
                  "min_users": int(df["exact"].min()), "max_users": int(df["exact"].max())}))
"""

ESTIMATE = """
import json, sys, time, numpy as np, forensics
from pathlib import Path
out, sizes, reps = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
key = json.loads((out / "answer_key.json").read_text())
case = forensics.open(out / "case.duckdb")
feature, kind = key["pattern"]["feature"], key["pattern"]["event_kind"]
con = case.con
con.execute("DELETE FROM labels WHERE run_id IN ('bench-flag', 'bench-review')")
con.execute("DELETE FROM cluster_members WHERE run_id = 'bench'")
con.execute("DELETE FROM clusters WHERE run_id = 'bench'")
con.execute("CREATE OR REPLACE TEMP TABLE truth AS SELECT column0 AS event_id FROM "
            "read_csv(?, header=false, columns={'column0': 'VARCHAR'})",
            [str(out / "affected_events.txt")])
con.execute(\"\"\"INSERT INTO labels SELECT event_id, 'flagged', 'rule', 1, NULL, 'bench-flag'
  FROM event_facts WHERE feature = ? AND kind = ? AND (event_id IN (SELECT event_id FROM truth)
  OR is_bad OR hash(event_id) % 50 = 0)\"\"\", [feature, kind])
con.execute(\"\"\"INSERT INTO cluster_members SELECT event_id, CASE WHEN is_error THEN 'error'
  WHEN is_flagged THEN 'moderation' WHEN negative_feedback THEN 'feedback' ELSE 'other' END,
  'bench' FROM event_facts WHERE list_contains(labels, 'flagged')\"\"\")
con.execute(\"\"\"INSERT INTO clusters SELECT cluster_id, 'bench', cluster_id, [], count(*),
  cluster_id, NULL FROM cluster_members WHERE run_id = 'bench' GROUP BY cluster_id\"\"\")
con.execute("INSERT INTO runs VALUES ('bench', 'cluster', NULL, TIMESTAMP '2100-01-01')")
pop = case.sql("SELECT count(*) AS n, count(*) FILTER (WHERE event_id IN (SELECT event_id "
               "FROM truth)) AS bad FROM event_facts WHERE list_contains(labels, 'flagged')"
               ).rows()[0]
truth_events = key["affected"]["events"]
truth_users = key["affected"]["users"]
assert pop["bad"] == truth_events, (pop, truth_events)
results = []
for n in sizes:
    for rep in range(reps):
        con.execute("DELETE FROM labels WHERE run_id = 'bench-review'")
        pick = case.review_sample("flagged", n, seed=rep)
        con.execute(\"\"\"INSERT INTO labels SELECT p.event_id, CASE WHEN t.event_id IS NULL
          THEN 'not_affected' ELSE 'confirmed' END, 'reviewer', 1, NULL, 'bench-review'
          FROM (SELECT unnest($ids) AS event_id) p LEFT JOIN truth t USING (event_id)\"\"\",
                    {"ids": pick.df["event_id"].to_list()})
        t = time.perf_counter()
        m = case.estimate_impact("flagged", reps=1000, seed=rep).meta
        results.append({"n": n, "rep": rep, "seconds": time.perf_counter() - t,
                        "events": [m["events_low"], m["events_estimate"], m["events_high"]],
                        "users": [m["users_low"], m["users_estimate"], m["users_high"]]})
con.execute("DELETE FROM labels WHERE run_id IN ('bench-flag', 'bench-review')")
case.close()
print(json.dumps({"scenario": key["scenario"], "flagged": pop["n"], "truth_events": truth_events,
                  "truth_users": truth_users, "results": results}))
"""


def _run(code: str, *args: Any) -> dict[str, Any]:
    out = subprocess.run([PY, "-c", code, *map(str, args)], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ,
                                                              "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def speed(events: int, repeat: int) -> str:
    drill = DATA / f"impact_{events}"
    case = _run(PREPARE, "prompt_regression", events, drill)["case"]
    key = json.loads((drill / "answer_key.json").read_text())
    label, change = key["pattern"]["labels"][-1], key["root_cause"]["change_id"]
    calls = ["baseline", "impact", "impact_by_plan", "impact_change", "impact_approx"]
    rows, exact_users = [], None
    base = None
    for what in calls:
        runs = [_run(SPEED, case, what, label, change) for _ in range(repeat)]
        med = statistics.median(r["seconds"] for r in runs)
        base = med if what == "baseline" else base
        if what == "impact":
            exact_users = runs[0]["users"]
        rows.append((what, med, [round(r["seconds"], 2) for r in runs], runs[0]["users"],
                     max(r["rss_mb"] for r in runs)))
    approx = _run(APPROX, case)
    errs = sorted(abs(e) for e in approx["errors"])
    n_rows = key["requests"]
    lines = [f"### Speed: {events:,}-request drill case (prompt_regression, seed 1), "
             f"label `{label}`, fresh process per run",
             "", f"Machine: {_machine()}; command: `bench/bench_impact.py speed --events "
             f"{events} --repeat {repeat}`; {n_rows:,} requests.", "",
             "| call | median s | runs s | users | ratio to baseline | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for what, med, runs_s, users, rss in rows:
        lines.append(f"| {what} | {med:.2f} | {runs_s} | {users:,} | "
                     f"{med / base:.1f}x | {rss:.0f} |")
    approx_users = rows[-1][3]
    lines += ["", f"Exact users for the pattern: {exact_users:,}; approximate: {approx_users:,} "
              f"({100 * (approx_users - exact_users) / exact_users:+.2f}%).",
              f"Approximate distinct (HyperLogLog) vs exact over {approx['subsets']} "
              f"(feature, locale, day) subsets of {approx['min_users']:,}-"
              f"{approx['max_users']:,} users: relative error sd "
              f"{100 * statistics.pstdev(approx['errors']):.2f}%, median |error| "
              f"{100 * statistics.median(errs):.2f}%, 95th percentile |error| "
              f"{100 * errs[int(0.95 * (len(errs) - 1))]:.2f}%, max {100 * errs[-1]:.2f}% "
              f"(stated: {100 * 0.0325:.2f}% standard error)."]
    return "\n".join(lines)


def estimate(events: int, reps: int) -> str:
    lines = [f"### Sampled-review estimation: drills of {events:,} requests (seed 1), "
             f"{reps} repetitions per sample size", "",
             f"Machine: {_machine()}; command: `bench/bench_impact.py estimate --events "
             f"{events} --reps {reps}`. Coverage of the 95% interval (target 93-97%), mean "
             "width, and mean error of the point estimate; truth from the answer key.", "",
             "| scenario | flagged | true events / users | n | events coverage | events width "
             "| events bias | users coverage | users width | users bias | s per estimate |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    pooled: dict[int, list[tuple[bool, bool]]] = {n: [] for n in SIZES}
    for scen in SCENARIOS:
        drill = DATA / f"estimate_{scen}_{events}"
        _run(PREPARE, scen, events, drill)
        out = _run(ESTIMATE, drill, json.dumps(list(SIZES)), reps)
        te, tu = out["truth_events"], out["truth_users"]
        for n in SIZES:
            rs = [r for r in out["results"] if r["n"] == n]
            ce = [r["events"][0] <= te <= r["events"][2] for r in rs]
            cu = [r["users"][0] <= tu <= r["users"][2] for r in rs]
            pooled[n] += list(zip(ce, cu, strict=True))
            lines.append(
                f"| {scen} | {out['flagged']:,} | {te:,} / {tu:,} | {n} | "
                f"{100 * sum(ce) / len(rs):.0f}% | "
                f"{statistics.mean(r['events'][2] - r['events'][0] for r in rs):.0f} | "
                f"{statistics.mean(r['events'][1] - te for r in rs):+.1f} | "
                f"{100 * sum(cu) / len(rs):.0f}% | "
                f"{statistics.mean(r['users'][2] - r['users'][0] for r in rs):.0f} | "
                f"{statistics.mean(r['users'][1] - tu for r in rs):+.1f} | "
                f"{statistics.median(r['seconds'] for r in rs):.2f} |")
    lines += ["", "Pooled over the four drills:", "",
              "| n | events coverage | users coverage | repetitions |", "|---|---|---|---|"]
    for n in SIZES:
        c = pooled[n]
        lines.append(f"| {n} | {100 * sum(e for e, _ in c) / len(c):.1f}% | "
                     f"{100 * sum(u for _, u in c) / len(c):.1f}% | {len(c)} |")
    return "\n".join(lines)


def _synthetic_population(kind: str, rng: Any) -> Any:
    """2,500 flagged events of 1,500 users with a Zipf-like activity in three strata;
    truth independent per event, decided per user (a cohort the bad version served), or
    from a latent per-user effect (probit, correlation 0.6)."""
    import numpy as np
    import polars as pl
    from scipy.stats import norm

    users = 1500
    act = 1 / np.power(np.arange(users) + 1.0, 0.7)
    owner = rng.choice(users, size=2500, p=act / act.sum())
    stratum = rng.choice(3, size=2500, p=[0.5, 0.3, 0.2])
    base = np.array([0.6, 0.3, 0.05])[stratum]
    if kind == "independent":
        truth = rng.random(2500) < base
    elif kind == "per-user":
        truth = (rng.random(users) < 0.5)[owner] & (rng.random(2500) < base * 1.6)
    else:
        z = rng.normal(size=users)
        truth = np.sqrt(0.6) * z[owner] + np.sqrt(0.4) * rng.normal(size=2500) < norm.ppf(base)
    return pl.DataFrame({"event_id": [f"e{i:05d}" for i in range(2500)],
                         "user_id": [f"u{u}" for u in owner],
                         "stratum": [f"s{x}" for x in stratum], "truth": truth})


def synthetic(reps: int) -> str:
    """Coverage of the users interval when within-user structure is not explained by time
    (no timestamps): the estimator's model is put to the test, not the drills' shape."""
    import numpy as np
    import polars as pl

    from forensics.impact.estimate import Population

    lines = [f"### Sampled-review estimation: synthetic populations, {reps} repetitions", "",
             f"Command: `bench/bench_impact.py synthetic --reps {reps}`; simple random review "
             "samples; 2,500 flagged events of 1,500 users (Zipf-like activity), three strata, "
             "no timestamps.", "",
             "| truth within a user | n | events coverage | users coverage | users width | "
             "users bias |", "|---|---|---|---|---|---|"]
    for kind in ("independent", "per-user", "latent"):
        for n in SIZES:
            ce = cu = 0
            widths, bias = [], []
            for rep in range(reps):
                rng = np.random.default_rng(rep * 7 + n)
                pop = _synthetic_population(kind, rng)
                reviewed = np.zeros(pop.height, dtype=bool)
                reviewed[rng.choice(pop.height, n, replace=False)] = True
                table = pop.with_columns(reviewed=pl.Series(reviewed),
                                         confirmed=pl.Series(reviewed) & pl.col("truth"))
                p = Population.from_frame(table)
                te = int(pop["truth"].sum())
                tu = pop.filter(pl.col("truth"))["user_id"].n_unique()
                ev, us = p.event_draws(1000, rng), p.user_draws(1000, rng)
                lo, hi = np.quantile(ev, [0.025, 0.975])
                ulo, uhi = np.quantile(us, [0.025, 0.975])
                ce += int(lo <= te <= hi)
                cu += int(ulo <= tu <= uhi)
                widths.append(uhi - ulo)
                bias.append(p.users_point() - tu)
            lines.append(f"| {kind} | {n} | {100 * ce / reps:.0f}% | {100 * cu / reps:.0f}% | "
                         f"{statistics.mean(widths):.0f} | {statistics.mean(bias):+.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["speed", "estimate", "synthetic", "all"])
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    if args.what in ("speed", "all"):
        print(speed(args.events or 10_000_000, args.repeat), flush=True)
    if args.what in ("estimate", "all"):
        print(estimate(args.events or 300_000, args.reps), flush=True)
    if args.what in ("synthetic", "all"):
        sys.path.insert(0, str(ROOT))
        print(synthetic(args.reps), flush=True)
    print(f"\n_total {time.perf_counter() - t:.0f} s_", file=sys.stderr)


if __name__ == "__main__":
    main()

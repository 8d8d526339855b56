"""The accuracy scorecard on multi-incident drills, end to end: detect, cluster, incidents,
suspects, impact, severity, onset and the containment what-if, scored against each
drill's manifest.

The drill list is FIXED here, before the first run, and every drill is reported (no
selection): 30 drills from real outputs (the shared corpus texts: 5 mixes x 6 seeds) and
10 with the built-in texts (5 mixes x seeds 1-2), side by side.

    .venv/bin/python bench/scorecard.py --out bench/scorecard.json --jobs 2
    .venv/bin/python bench/scorecard.py --report bench/scorecard.json   # the tables

Targets: per-detector false-positive rate on fine events <= 1 % each and <= 3 % together;
cluster ARI against the true categories >= 0.75; each planted incident found as its own
incident >= 95 %; its cause ranked first >= 90 % (and above every decoy); affected users
within 10 % >= 90 %; severity right on the playbook matrix >= 90 %; onset within one
bucket >= 90 %; what-if (events spared by a rollback 6 h after the onset) within 10 %
>= 80 %.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEXTS = REPO.parent / "shared" / "corpus" / "texts"
MIXES = ["refusal+leak", "json+agent", "harm+refusal", "leak+json+harm", "agent+refusal+leak"]
SEEDS = [1, 2, 3, 4, 5, 6]
BUILTIN_SEEDS = [1, 2]
EVENTS, DAYS = 6_000, 5
# (texts, mix, seed): fixed before the first run. The built-in side is smaller (the
# shared 2-core machine): the first two seeds of every mix.
DRILLS = [("real", m, s) for m in MIXES for s in SEEDS] + \
    [("builtin", m, s) for m in MIXES for s in BUILTIN_SEEDS]
# The outcome a drill planted or drew -> the detector families that should label it.
EXPECTED = {"refusal": {"refusal"}, "leak": {"data_leak"}, "malformed_json": {"malformed"},
            "harmful": {"harmful"}, "harmful_blocked": {"harmful"},
            "unauthorized": {"unauthorized_action"}, "wrong_language": {"wrong_language"},
            "truncated": {"incomplete"}, "hallucination": {"ungrounded"},
            "tool_error": {"malformed"}}


def expected_level(ev: dict[str, Any]) -> str:
    """The default severity matrix applied to the drill's true evidence."""
    from forensics.playbook.severity import DEFAULT_RULES

    keys = {"min_users": "affected_users", "min_user_share": "user_share"}
    for rule in DEFAULT_RULES:
        ok = True
        for cond, want in rule.items():
            if cond in ("name", "level", "why"):
                continue
            if cond == "category":
                ok &= ev["category"] in want
            elif cond in ("user_visible", "ongoing"):
                ok &= bool(ev[cond]) == bool(want)
            elif cond in keys:
                ok &= ev[keys[cond]] >= want
            else:
                ok = False
        if ok:
            return str(rule["level"])
    return "low"


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def run_one(drill: tuple[str, str, int]) -> dict[str, Any]:
    import polars as pl
    from sklearn.metrics import adjusted_rand_score

    import forensics
    from forensics.drills.mix import generate_mix

    kind, mix, seed = drill
    tmp = Path(tempfile.mkdtemp(prefix="scorecard-"))
    t0 = time.perf_counter()
    try:
        man = generate_mix(tmp / "d", mix, seed=seed, events=EVENTS, days=DAYS,
                           texts=TEXTS if kind == "real" else None)
        case = forensics.open(tmp / "case.duckdb")
        for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
            case.load(tmp / "d" / name)
        case.detect()
        case.cluster()
        truth = pl.read_csv(tmp / "d" / "event_truth.csv")
        case.con.register("_truth", truth.to_arrow())
        lab = (case.con.sql("""
            SELECT t.event_id, t.outcome, l.label, v.family
            FROM _truth t LEFT JOIN labels l ON l.event_id = t.event_id AND l.source = 'rule'
            LEFT JOIN label_vocabulary v ON v.label = l.label
            WHERE l.label IS NULL OR v.bad""").pl())
        assert isinstance(lab, pl.DataFrame)
        fine = truth.filter(pl.col("outcome") == "normal").height
        fp = (lab.filter((pl.col("outcome") == "normal") & pl.col("label").is_not_null())
              .group_by("label").agg(pl.col("event_id").n_unique().alias("n")))
        fp_any = lab.filter((pl.col("outcome") == "normal") & pl.col("label").is_not_null()
                            )["event_id"].n_unique()
        recall = {}
        for outcome, fams in EXPECTED.items():
            part = lab.filter(pl.col("outcome") == outcome)
            n = part["event_id"].n_unique()
            if n:
                hit = part.filter(pl.col("family").is_in(list(fams)))["event_id"].n_unique()
                recall[outcome] = [hit, n]
        members = (case.con.sql("""
            SELECT m.event_id, m.cluster_id, t.outcome FROM cluster_members m
            JOIN _truth t USING (event_id)
            WHERE m.run_id = (SELECT max(run_id) FROM cluster_members)
              AND t.outcome <> 'normal'""").pl())
        assert isinstance(members, pl.DataFrame)
        ari = float(adjusted_rand_score(members["outcome"].to_list(),
                                        members["cluster_id"].to_list())) \
            if members.height > 1 else None
        inc = case.incidents()
        found = inc.incidents()
        decoys = {d["change_id"] for d in man["decoys"]}
        used: set[str] = set()
        planted = []
        for t in man["incidents"]:
            match = next((f for f in found if f["incident_id"] not in used
                          and t["feature"] in f["features"]
                          and set(t["families"]) & set(f["families"])), None)
            row: dict[str, Any] = {"incident": t["incident"], "feature": t["feature"],
                                   "found": match is not None}
            if match is not None:
                used.add(match["incident_id"])
                sus = match["suspects"]
                cause = t["cause"]["change_id"]
                rank = sus.index(cause) if cause in sus else None
                row.update(
                    incident_id=match["incident_id"], top=match["top_suspect"],
                    cause_first=match["top_suspect"] == cause,
                    above_decoys=rank is not None and all(
                        sus.index(d) > rank for d in decoys if d in sus),
                    users=match["users"], key_users=t["affected"]["users"],
                    users_ok=abs((match["users"] or 0) - t["affected"]["users"])
                    <= 0.1 * t["affected"]["users"],
                    severity=match["severity"],
                    key_severity=expected_level(t["severity_evidence"]),
                    onset=str(match["onset"]), key_onset=t["onset"],
                    onset_ok=match["onset"] is not None and abs(
                        (match["onset"] - _ts(t["onset"])).total_seconds()) <= 3600)
                row["severity_ok"] = row["severity"] == row["key_severity"]
                point = next((x for x in t["spared_if_contained_at"]
                              if _ts(x["contained_at"]) >= _ts(t["onset"])
                              + dt.timedelta(hours=6)), None)
                if point is not None and match["top_suspect"] == cause:
                    what = case.containment(match["pattern"], change=cause,
                                            at=[point["contained_at"]])
                    got = int(what.df["events_spared"][0]) if what.df.height else 0
                    row.update(whatif=got, key_whatif=point["events"],
                               whatif_ok=abs(got - point["events"])
                               <= 0.1 * max(point["events"], 1))
            planted.append(row)
        extra = [f["incident_id"] for f in found if f["incident_id"] not in used]
        case.close()
        return {"texts": kind, "mix": mix, "seed": seed, "fine": fine,
                "fp": {r["label"]: r["n"] for r in fp.iter_rows(named=True)},
                "fp_any": fp_any, "recall": recall, "ari": ari, "planted": planted,
                "extra_incidents": extra, "baselines": inc.meta["baselines"],
                "seconds": round(time.perf_counter() - t0, 1)}
    except Exception as exc:  # a crash is a result too: reported, not hidden
        return {"texts": kind, "mix": mix, "seed": seed, "error": repr(exc),
                "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f} %)" if b else "n/a"


def report(results: list[dict[str, Any]]) -> str:
    """Markdown tables: the scorecard per texts kind, side by side, then every drill."""
    kinds = ["real", "builtin"]
    by = {k: [r for r in results if r["texts"] == k] for k in kinds}
    lines = ["| measure | target | real-output drills | built-in-texts drills |",
             "|---|---|---|---|"]

    def row(name: str, target: str, fn: Any) -> None:
        lines.append(f"| {name} | {target} | " + " | ".join(fn(by[k]) for k in kinds) + " |")

    def ok(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rs if "error" not in r]

    row("drills run (crashed)", "all", lambda rs: f"{len(ok(rs))} ({len(rs) - len(ok(rs))})")
    def fp_total(rs: list[dict[str, Any]]) -> str:
        a, b = sum(r["fp_any"] for r in ok(rs)), sum(r["fine"] for r in ok(rs))
        return f"{100 * a / b:.2f} % ({a}/{b})" if b else "n/a"
    row("FP rate on fine events, all detectors", "<= 3 %", fp_total)
    labels = sorted({k for r in ok(results) for k in r["fp"]})
    def fp_one(rs: list[dict[str, Any]], lb: str) -> str:
        a, b = sum(r["fp"].get(lb, 0) for r in ok(rs)), sum(r["fine"] for r in ok(rs))
        return f"{100 * a / max(b, 1):.2f} % ({a})"
    for label in labels:
        row(f"FP rate on fine events: {label}", "<= 1 %",
            lambda rs, lb=label: fp_one(rs, lb))
    for outcome in EXPECTED:
        row(f"recall: {outcome}", "", lambda rs, o=outcome: _pct(
            sum(r["recall"].get(o, [0, 0])[0] for r in ok(rs)),
            sum(r["recall"].get(o, [0, 0])[1] for r in ok(rs))))
    row("cluster ARI vs true categories (median)", ">= 0.75", lambda rs: (
        f"{sorted(r['ari'] for r in ok(rs) if r['ari'] is not None)[len(ok(rs)) // 2]:.3f}"
        if ok(rs) else "n/a"))
    planted = {k: [p for r in ok(by[k]) for p in r["planted"]] for k in kinds}

    def prow(name: str, target: str, key: str, among_found: bool = True) -> None:
        cells = []
        for k in kinds:
            ps = [p for p in planted[k] if p["found"]] if among_found else planted[k]
            if key == "whatif_ok":
                ps = [p for p in ps if "whatif_ok" in p]
            cells.append(_pct(sum(bool(p.get(key)) for p in ps), len(ps)))
        lines.append(f"| {name} | {target} | " + " | ".join(cells) + " |")
    prow("planted incident found as its own incident", ">= 95 %", "found", among_found=False)
    prow("cause ranked first (of found)", ">= 90 %", "cause_first")
    prow("cause above every decoy (of found)", "all", "above_decoys")
    prow("affected users within 10 % (of found)", ">= 90 %", "users_ok")
    prow("severity right (of found)", ">= 90 %", "severity_ok")
    prow("onset within one bucket (of found)", ">= 90 %", "onset_ok")
    prow("what-if within 10 % (cause found first)", ">= 80 %", "whatif_ok")
    row("extra incidents (not planted), total", "", lambda rs: str(
        sum(len(r["extra_incidents"]) for r in ok(rs))))
    row("median seconds per drill", "", lambda rs: str(
        sorted(r["seconds"] for r in rs)[len(rs) // 2]) if rs else "n/a")
    lines += ["", "Every planted incident:", "",
              "| texts | mix | seed | incident | found | top suspect | users (key) | "
              "severity (key) | onset (key) | what-if (key) |", "|---" * 10 + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['texts']} | {r['mix']} | {r['seed']} | CRASH: {r['error'][:80]} "
                         "| | | | | | |")
            continue
        for p in r["planted"]:
            lines.append(
                f"| {r['texts']} | {r['mix']} | {r['seed']} | {p['incident']} | "
                f"{'yes' if p['found'] else 'NO'} | {p.get('top', '')} | "
                f"{p.get('users', '')} ({p.get('key_users', '')}) | "
                f"{p.get('severity', '')} ({p.get('key_severity', '')}) | "
                f"{str(p.get('onset', ''))[5:16]} ({str(p.get('key_onset', ''))[5:16]}) | "
                f"{p.get('whatif', '')} ({p.get('key_whatif', '')}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/scorecard.json")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--report", help="print the tables of a results file and exit")
    ap.add_argument("--only", choices=["real", "builtin"])
    args = ap.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return
    drills = [d for d in DRILLS if args.only is None or d[0] == args.only]
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(run_one, drills):
            results.append(r)
            print(f"{r['texts']} {r['mix']} {r['seed']}: {r.get('error') or 'ok'} "
                  f"({r['seconds']} s)", file=sys.stderr, flush=True)
            Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    print(report(results))


if __name__ == "__main__":
    main()

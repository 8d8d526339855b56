"""Playbook analytics benchmarks: onset, containment what-if and severity on
drills; speed of the alert backtest at 1M / 10M events.

    .venv/bin/python bench/bench_playbook.py accuracy [--events 120000] [--seeds 5]
    .venv/bin/python bench/bench_playbook.py speed [--events 1000000] [--case PATH]
    .venv/bin/python bench/bench_playbook.py all --write     # and update bench/RESULTS.md

Accuracy: every scenario x seed is generated with ``forensics.drills.generator`` and loaded (events,
changes, feedback). The pattern is then defined the way an investigator would after
detection:

- when ``forensics.detect.detectors`` exists, ``case.detect()`` runs and the pattern is any of the
  answer key's pattern labels;
- until then (STAND-IN FOR DETECTION, bench only): while the drill is generated, the
  generator's own record of which events show the pattern's outcomes (any feature, any
  version, background included) is captured and loaded as ``labels`` rows named after the
  key's first pattern label (source ``import``, detail ``drill truth: stand-in for
  detection``). The answer key itself lists only the pattern events served by the
  root-cause version; the capture adds the same record for every other version, so the
  old version's background rate is visible, as it would be to a detector. Nothing else
  of the answer key is used before scoring.

Scored against ``answer_key.json``: the detected onset (within one bucket), the what-if
events and users spared for each ``spared_if_contained_at`` time, the suspect used.
Speed: ``detection_gap()`` (one DuckDB aggregation + the NumPy rule grid) on a drill case
of ``--events`` requests, fresh process per run, median of ``--repeat``; baseline in the
same run: one plain ``GROUP BY feature, hour`` count over ``events``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Playbook analytics"
MIN_POINT_EVENTS = 50     # curve points scored: the key spares at least this many events
SCENARIOS = ("prompt_regression", "retrieval_leak", "model_upgrade", "agent_tool")
WORK = Path(os.environ.get("BENCH_DATA", "/work/bench-data/playbook"))
sys.path.insert(0, str(ROOT))
from bench.bench_suspects import _run  # noqa: E402  (one subprocess runner for the benches)


def generate_with_truth(outdir: Path, scenario: str, seed: int, events: int) -> dict[str, Any]:
    """``forensics.drills.generator.generate`` plus ``pattern_events.txt``: the generator's
    record of every event showing the scenario's pattern outcomes (the stand-in for detection)."""
    import polars as pl

    from forensics.drills import generator as drill

    effect = drill.SCENARIOS[scenario].effect
    kind = "tool" if effect.feature == "agent" else "llm"
    found: list[pl.DataFrame] = []
    original = drill._finish_day

    def capture(*args: Any, **kwargs: Any) -> Any:
        day = original(*args, **kwargs)
        found.append(day.frame.filter(pl.col("outcome").is_in(list(effect.pattern))
                                      & (pl.col("kind") == kind)).select("event_id"))
        return day

    drill._finish_day = capture          # type: ignore[assignment]
    try:
        summary = drill.generate(outdir, scenario, seed=seed, events=events)
    finally:
        drill._finish_day = original     # type: ignore[assignment]
    ids = pl.concat(found)["event_id"].sort().to_list()
    (outdir / "pattern_events.txt").write_text("".join(i + "\n" for i in ids), "utf-8")
    return summary


def open_drill(outdir: Path, detect: bool | None = None
               ) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Load a generated drill into ``outdir/case.duckdb`` (once); return the case, the
    answer key and the pattern keywords for the analytics. ``detect``: run
    ``case.detect()`` (default: when it exists) or use the stand-in labels."""
    import forensics

    key = json.loads((outdir / "answer_key.json").read_text())
    path = outdir / "case.duckdb"
    fresh = not path.exists()
    case = forensics.open(path)
    if fresh:
        for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
            case.load(outdir / name)
    labels = key["pattern"]["labels"]
    if detect if detect is not None else hasattr(case, "detect"):
        if fresh:
            case.detect()
        quoted = ", ".join("'" + x.replace("'", "''") + "'" for x in labels)
        return case, key, {"where": f"list_has_any(labels, [{quoted}])"}
    if fresh:
        case.con.execute(
            "INSERT INTO labels SELECT column0, $label, 'import', 1.0, "
            "'drill truth: stand-in for detection', 'bench' "
            "FROM read_csv($path, header = false, columns = {'column0': 'VARCHAR'})",
            {"label": labels[0], "path": str(outdir / "pattern_events.txt")})
    return case, key, {"label": labels[0]}


ONE_DRILL = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from bench.bench_playbook import generate_with_truth, open_drill, score
scen, seed, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
if not (out / "pattern_events.txt").exists():
    generate_with_truth(out, scen, seed, n)
case, key, kw = open_drill(out)
print(json.dumps(score(case, key, kw, scen, seed)))
case.close()
"""

SPEED = """
import json, resource, sys, time, forensics
from forensics.playbook import detection_gap as alerts
from forensics.playbook.episode import episode
case = forensics.open(sys.argv[1], read_only=True)
label, what = sys.argv[2], sys.argv[3]
t = time.perf_counter()
if what == "baseline":
    case.sql("SELECT feature, time_bucket(INTERVAL 1 hour, ts) AS b, count(*) AS n "
             "FROM events GROUP BY ALL", row_cap=None)
    out = {}
elif what == "backtest":
    ep = episode(case, label, suspect=False)
    t_ep = time.perf_counter() - t
    t2 = time.perf_counter()
    gap = alerts.detection_gap(case, ep=ep)
    out = {"episode_s": t_ep, "grid_and_signals_s": time.perf_counter() - t2,
           "rules": gap.df.height, "best": gap.meta["best_rule"]["rule"]}
else:
    gap = case.detection_gap(label)
    out = {"rules": gap.df.height, "best": gap.meta["best_rule"]["rule"]}
out["seconds"] = time.perf_counter() - t
out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _t(value: Any) -> Any:
    from forensics.playbook.milestones import to_utc

    return to_utc(value)


def score(case: Any, key: dict[str, Any], kw: dict[str, Any], scen: str,
          seed: int) -> dict[str, Any]:
    """Run the playbook analytics on one loaded drill and score them against its key."""
    from forensics.playbook.timeline import incident_timeline

    t = time.perf_counter()
    gap = case.detection_gap(**kw)
    t_gap = time.perf_counter() - t
    grid = [x["contained_at"] for x in key["spared_if_contained_at"]]
    ep = gap.episode
    t = time.perf_counter()
    what = case.containment(**kw, at=grid, ep=ep, detection=gap)
    t_what = time.perf_counter() - t
    sev = case.severity(**kw, ep=ep)
    tl = incident_timeline(case, detection=gap)
    onset, truth = gap.meta["onset"], _t(key["onset"])
    bucket = 3600.0
    errors = []
    for x in key["spared_if_contained_at"]:
        row = what.df.filter(what.df["t"] == _t(x["contained_at"])).row(0, named=True)
        errors.append({"t": x["contained_at"], "key_events": x["events"],
                       "key_users": x["users"], "events": row["events_spared"],
                       "users": row["users_spared"],
                       "events_low": row["events_low"], "events_high": row["events_high"],
                       "users_low": row["users_low"], "users_high": row["users_high"]})
    scored = [e for e in errors if e["key_events"] >= MIN_POINT_EVENTS]
    covered = sum(e["events_low"] <= e["key_events"] <= e["events_high"] for e in errors) + \
        sum(e["users_low"] <= e["key_users"] <= e["users_high"] for e in errors)
    rel = lambda a, b: abs(a - b) / b if b else 0.0  # noqa: E731
    best = gap.meta["best_rule"] or {}
    sus = ep.meta.get("suspect") or {}
    return {
        "scenario": scen, "seed": seed, "detect": hasattr(case, "detect"),
        "key_onset": key["onset"], "onset": str(onset), "onset_source": gap.meta["onset_source"],
        "onset_ok": onset is not None and abs((onset - truth).total_seconds()) <= bucket,
        "change_point": str(gap.meta["change_point"]),
        "change_point_ok": gap.meta["change_point"] is not None and
        abs((gap.meta["change_point"] - truth).total_seconds()) <= bucket,
        "suspect": sus.get("change_id"), "suspect_ok": sus.get("change_id") ==
        key["root_cause"]["change_id"],
        "contained": str(ep.meta["contained_at"]), "contained_ok":
        str(ep.meta["contained_at"]) == str(_t(key["contained_at"])),
        "spared_at_onset": errors[0], "events_rel_err_onset": rel(errors[0]["events"],
                                                                  errors[0]["key_events"]),
        "users_rel_err_onset": rel(errors[0]["users"], errors[0]["key_users"]),
        "max_events_rel_err": max((rel(e["events"], e["key_events"]) for e in scored),
                                  default=0.0),
        "max_users_rel_err": max((rel(e["users"], e["key_users"]) for e in scored),
                                 default=0.0),
        "points_scored": len(scored), "curve": errors,
        "covered": covered, "intervals": 2 * len(errors),
        "severity": sev.meta["level"], "severity_rule": sev.meta["rule"],
        "category": sev.meta["evidence"]["category"],
        "alert": best.get("rule"), "alert_delay_h": best.get("delay_hours"),
        "alert_false_alarms": best.get("false_alarms"),
        "first_complaint_h": gap.meta.get("first_complaint_after_onset_hours"),
        "timeline_entries": tl.df.height, "gap_s": t_gap, "containment_s": t_what}


def accuracy(events: int, seeds: int, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for scen in SCENARIOS:
        for seed in range(1, seeds + 1):
            row = _run(ONE_DRILL, scen, str(seed), str(events),
                       str(workdir / f"{scen}-{seed}-{events}"), str(ROOT))
            print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
            rows.append(row)
    return rows


def make_speed_case(workdir: Path, events: int) -> Path:
    out = workdir / f"speed-{events}"
    code = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from bench.bench_playbook import generate_with_truth, open_drill
out = Path(sys.argv[1])
if not (out / "pattern_events.txt").exists():
    generate_with_truth(out, "prompt_regression", 11, int(sys.argv[2]))
case, key, kw = open_drill(out, detect=False)     # speed: the backtest, not detection
case.close()
print("{}")
"""
    _run(code, str(out), str(events), str(ROOT))
    return out / "case.duckdb"


def speed(case: Path, repeat: int, label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for what in ("baseline", "backtest", "full"):
        runs = [_run(SPEED, str(case), label, what) for _ in range(repeat)]
        med = statistics.median(r["seconds"] for r in runs)
        out[what] = {"median_s": med, "runs_s": [round(r["seconds"], 2) for r in runs],
                     "peak_rss_mb": max(r["rss_mb"] for r in runs)}
        for k in ("episode_s", "grid_and_signals_s"):
            if k in runs[0]:
                out[what][k] = statistics.median(r[k] for r in runs)
        print(what, json.dumps(out[what]), flush=True)
    return out


def render(acc: list[dict[str, Any]] | None, spd: dict[str, Any] | None, events: int,
           speed_events: int, case_rows: int | None) -> str:
    lines = [SECTION, "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}; command: `.venv/bin/python bench/bench_playbook.py "
             "all --write` (drills and cases under `$BENCH_DATA`, default "
             "`/work/bench-data/playbook`).", ""]
    if acc:
        n = len(acc)
        how = "`case.detect()` labels" if acc[0]["detect"] else (
            "the stand-in for detection (the drill generator's record of the pattern's "
            "events on every version, loaded as labels: see the script's docstring; "
            "`forensics.detect.detectors` is not merged yet)")
        ok_onset = sum(r["onset_ok"] for r in acc)
        ok_cp = sum(r["change_point_ok"] for r in acc)
        ok_what = sum(r["max_events_rel_err"] <= 0.10 for r in acc)
        ok_users = sum(r["max_users_rel_err"] <= 0.10 for r in acc)
        at_onset = sum(r["events_rel_err_onset"] <= 0.10 and r["users_rel_err_onset"] <= 0.10
                       for r in acc)
        covered = sum(r["covered"] for r in acc) / max(sum(r["intervals"] for r in acc), 1)
        lines += [f"### Accuracy: {n} drills of {events:,} requests, pattern from {how}", "",
                  f"- Onset within one bucket (1 h) of the key's: **{ok_onset}/{n}** "
                  f"(target >= 19/20); the pure change point (no suspect anchoring): "
                  f"{ok_cp}/{n}.",
                  f"- Containment what-if (rollback at the onset) within 10 % of the key's "
                  f"`spared_if_contained_at`, events and users: **{at_onset}/{n}**; at every "
                  f"6-hour point where the key spares >= {MIN_POINT_EVENTS} events: events "
                  f"**{ok_what}/{n}**, users **{ok_users}/{n}**; the 95 % intervals hold the "
                  f"key's value at {100 * covered:.0f} % of all points (events and users).",
                  f"- Suspect = the key's root cause: {sum(r['suspect_ok'] for r in acc)}/{n};"
                  f" containment time = the key's: {sum(r['contained_ok'] for r in acc)}/{n}.",
                  "", "| scenario | seed | onset (source) | change point | spared at onset: "
                  "events est / key | users est / key | max err events / users | severity "
                  "(rule) | proposed alert: delay h, false alarms | first complaint h |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in acc:
            s = r["spared_at_onset"]
            src = "suspect deploy" if r["onset_source"].startswith("deploy") else \
                r["onset_source"]
            lines.append(
                f"| {r['scenario']} | {r['seed']} | {r['onset'][5:16]} "
                f"{'ok' if r['onset_ok'] else 'MISS'} ({src}) | {r['change_point'][5:16]} | "
                f"{s['events']:.0f} / {s['key_events']} | {s['users']:.0f} / {s['key_users']} "
                f"| {100 * r['max_events_rel_err']:.1f} % / {100 * r['max_users_rel_err']:.1f} % "
                f"| {r['severity']} ({r['severity_rule']}) | {r['alert_delay_h']}, "
                f"{r['alert_false_alarms']} | {r['first_complaint_h']} |")
        lines += ["", "Notes: the onset is the incident's start: the deploy of the top "
                  "suspect when it is a likely cause that landed within the change point's "
                  "likelihood interval (or up to 72 h before it), else the change point; the "
                  "pure change point is reported beside it (a gradual rollout's first 10 % "
                  "hours often show too few pattern events to place it within an hour). The "
                  "what-if is scored where the key's figure rests on enough events (>= "
                  f"{MIN_POINT_EVENTS}); below that the key itself is a handful of events "
                  "and the comparison is noise (see the interval coverage). Proposed alerts: "
                  "thresholds are set from the same history their false alarms are counted "
                  "on (in-sample), and a rule must keep 1.2x headroom over the highest value "
                  "it saw before the onset.", ""]
    if spd:
        scale = f"{speed_events:,}-request drill case ({case_rows or '?':,} event rows)"
        mark = "" if speed_events >= 10_000_000 else \
            " (validation size; the 10M figures are run by the lead: `bench_playbook.py " \
            "speed --speed-events 10000000`)"
        lines += [f"### Speed: {scale}{mark}, fresh process per run", "",
                  "| call | median s | runs s | peak RSS MB | ratio to baseline |",
                  "|---|---|---|---|---|"]
        base = spd["baseline"]["median_s"]
        names = {"baseline": "baseline: one GROUP BY feature, hour count over events",
                 "backtest": "alert backtest: `detection_gap(suspect=False)` (episode "
                             "aggregation + change points + rule grid + first signals)",
                 "full": "`detection_gap()` default (adds `suspects()` to anchor the onset)"}
        for what in ("baseline", "backtest", "full"):
            s = spd[what]
            lines.append(f"| {names[what]} | {s['median_s']:.2f} | {s['runs_s']} | "
                         f"{s['peak_rss_mb']:.0f} | {s['median_s'] / base:.1f}x |")
        b = spd["backtest"]
        lines += ["", f"Backtest split: episode (one DuckDB aggregation to feature x hour, "
                      f"change points) {b['episode_s']:.2f} s; rule grid ({b.get('rules', 208)} "
                      f"rules, NumPy) + first-signal SQL {b['grid_and_signals_s']:.2f} s. "
                      "Target: backtest < 10 s at 10M.", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Put ``text`` in RESULTS.md as this benchmark's section; a part (``### Accuracy ...``,
    ``### Speed: N-request ...``) that was not re-run keeps its previous figures."""
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\Z)", re.S)
    found = pattern.search(old)
    if found:
        parts = _parts(text)
        for name, body in _parts(found.group(0)).items():
            parts.setdefault(name, body)
        order = ["", *sorted(k for k in parts if k)]
        text = "\n".join(parts[k].rstrip() + "\n" for k in order if k in parts)
        new = old[:found.start()] + text.rstrip() + "\n" + old[found.end():]
    else:
        new = old.rstrip() + "\n\n" + text.rstrip() + "\n"
    RESULTS.write_text(new, encoding="utf-8")


def _parts(section: str) -> dict[str, str]:
    """Subsections by heading, up to its first parenthesis ("" = the head), so a speed run
    at 10M sits beside the 1M validation instead of replacing it."""
    chunks = re.split(r"\n(?=### )", section)
    out = {"": chunks[0]}
    for chunk in chunks[1:]:
        out[chunk.splitlines()[0].split(" (")[0]] = chunk
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["accuracy", "speed", "all"])
    ap.add_argument("--events", type=int, default=300_000, help="requests per accuracy drill")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--case", default=None,
                    help="an existing drill case for speed (labelled as by open_drill)")
    ap.add_argument("--speed-events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    acc = spd = None
    rows = None
    if args.what in ("accuracy", "all"):
        acc = accuracy(args.events, args.seeds, WORK / "drills")
    if args.what in ("speed", "all"):
        case = Path(args.case) if args.case else make_speed_case(WORK, args.speed_events)
        import duckdb

        con = duckdb.connect(str(case), read_only=True)
        rows = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
        label = con.execute("SELECT any_value(label) FROM labels WHERE source = 'import'"
                            ).fetchall()[0][0] or "refusal"
        con.close()
        spd = speed(case, args.repeat, label)
    text = render(acc, spd, args.events, args.speed_events, rows)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()

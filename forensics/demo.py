"""The demo: a generated incident investigated end to end.

>>> from forensics.demo import run_demo
>>> report = run_demo(Path("forensics-demo"))   # doctest: +SKIP
>>> print(report.to_text())                      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .result import _jsonable

SCENARIO = "prompt_regression"


@dataclass
class DemoReport:
    outdir: Path
    case_path: Path
    steps: list[tuple[str, str]] = field(default_factory=list)   # (heading, text)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, heading: str, text: str, **data: Any) -> None:
        self.steps.append((heading, text))
        self.data.update(data)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({"outdir": str(self.outdir), "case": str(self.case_path),
                          "steps": [{"step": h, "text": t} for h, t in self.steps],
                          **self.data})

    def to_text(self) -> str:
        parts = [f"## {h}\n{t}" for h, t in self.steps]
        parts.append(f"Case file: {self.case_path}\nOutput folder: {self.outdir}\n"
                     f"Open it: python -c \"import forensics; "
                     f"print(forensics.open('{self.case_path}', read_only=True).summary())\"")
        return "\n\n".join(parts)


def run_demo(outdir: Path, events: int = 60_000, seed: int = 7,
             progress: Callable[..., None] | None = None) -> DemoReport:
    """Generate a drill, load it into a fresh case and investigate it."""
    from . import open as open_case
    from .drill import generate

    notify = progress or (lambda *_: None)
    outdir = Path(outdir)
    drill_dir = outdir / "drill"
    case_path = outdir / "incident.duckdb"
    for stale in (case_path, case_path.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    report = DemoReport(outdir=outdir, case_path=case_path)

    notify("generating the drill")
    generate(drill_dir, SCENARIO, seed=seed, events=events)
    key = json.loads((drill_dir / "answer_key.json").read_text(encoding="utf-8"))
    report.add("Drill", f"Scenario {SCENARIO!r}, seed {seed}: {events:,} events written to "
               f"{drill_dir} (the answer key is kept aside until the end).")

    case = open_case(case_path)
    try:
        _load(case, drill_dir, report, notify)
        _summarise(case, report)
        for step in _STEPS:
            step(case, report, notify)
        _answer(report, key)
    finally:
        case.close()
    return report


def _load(case: Any, drill_dir: Path, report: DemoReport, notify: Callable[..., None]) -> None:
    lines = []
    for name in ("events.jsonl", "changes.jsonl", "feedback.jsonl"):
        notify(f"loading {name}")
        row = case.load(drill_dir / name).rows()[0]
        lines.append(f"- {name}: {row['rows_loaded']:,} rows into {row['target']}, "
                     f"{row['rows_rejected']:,} rejected (sha256 {row['sha256'][:12]})")
    report.add("Evidence loaded", "\n".join(lines))


def _summarise(case: Any, report: DemoReport) -> None:
    summary = case.summary()
    ev = summary.rows()[0]
    features = ", ".join(f"{f['feature']} ({f['events']:,})" for f in summary.meta["features"])
    changes = case.sql("SELECT ts, kind, feature, from_version, to_version FROM changes "
                       "ORDER BY ts").rows()
    change_lines = "\n".join(f"- {c['ts']}: {c['kind']} change in {c['feature']}: "
                             f"{c['from_version']} -> {c['to_version']}" for c in changes)
    report.add("The case", f"{ev['rows']:,} events from {ev['first_ts']} to {ev['last_ts']}, "
               f"{ev['users']:,} users, {ev['sessions']:,} sessions.\nFeatures: {features}\n"
               f"Declared changes:\n{change_lines}",
               events=ev["rows"], users=ev["users"], changes=len(changes))


def _detect(case: Any, report: DemoReport, notify: Callable[..., None]) -> None:
    if not hasattr(case, "detect"):
        return
    notify("running detectors")
    labels = case.detect()
    top = "\n".join(f"- {r['label']}: {r['events']:,} events" for r in labels.rows()[:8])
    report.add("What went wrong (detectors)", top, labels=labels.rows())


def _cluster(case: Any, report: DemoReport, notify: Callable[..., None]) -> None:
    if not hasattr(case, "cluster"):
        return
    notify("clustering bad outputs")
    clusters = case.cluster()
    top = "\n".join(f"- {r['title']} ({r['category']}): {r['size']:,} events"
                    for r in clusters.rows()[:6])
    report.add("Failure patterns (clusters)", top, clusters=clusters.rows())


_STEPS: list[Callable[[Any, DemoReport, Callable[..., None]], None]] = [_detect, _cluster]


def _answer(report: DemoReport, key: dict[str, Any]) -> None:
    rc = key.get("root_cause", {})
    affected = key.get("affected", {})
    report.add("Answer key (for checking the investigation)",
               f"Planted root cause: {rc.get('kind')} change in {rc.get('feature')} "
               f"{rc.get('from_version')} -> {rc.get('to_version')} at {rc.get('ts')}; "
               f"affected {affected.get('users')} users, {affected.get('sessions')} sessions, "
               f"{affected.get('events')} events.", answer_key=key)

"""The demo: a generated incident investigated end to end.

>>> from forensics.cli.demo import run_demo
>>> report = run_demo(Path("forensics-demo"), events=6_000)
>>> report.to_dict()["root_cause_found"]
True
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.core.result import jsonable

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
        return jsonable({"outdir": str(self.outdir), "case": str(self.case_path),
                          "steps": [{"step": h, "text": t} for h, t in self.steps],
                          **self.data})

    def to_text(self) -> str:
        parts = [f"## {h}\n{t}" for h, t in self.steps]
        parts.append("## Next steps\n" + "\n".join(next_steps(self.case_path, self.outdir)))
        return "\n\n".join(parts)


def open_snippet(case_path: Path) -> str:
    """A shell command that opens the case read-only and prints its summary, with this
    interpreter (a venv's python need not be active).

    >>> "read_only=True" in open_snippet(Path("incident.duckdb"))
    True
    """
    code = (f"import forensics; c = forensics.open({str(case_path)!r}, read_only=True); "
            "print(c.summary().to_markdown()); c.close()")
    return f'{shlex.quote(sys.executable)} -c "{code}"' if '"' not in code and "$" not in code \
        else f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def next_steps(case_path: Path, outdir: Path) -> list[str]:
    """What to do after the demo, as commands that work as printed."""
    exe = Path(sys.executable)
    cli = exe.with_name("forensics")
    forensics_cmd = (shlex.quote(str(cli)) if cli.exists()
                     else f"{shlex.quote(str(exe))} -m forensics")
    case = shlex.quote(str(case_path))
    html = (outdir / "postmortem" / "postmortem.html").resolve()
    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    lines = [f"- Read the post-mortem: {html.as_uri()}",
             f"- Case file: {case_path} (output folder {outdir})",
             f"- Open it in Python: {open_snippet(case_path)}",
             f"- Verbs to try: {forensics_cmd} summary {case}",
             f"    {forensics_cmd} suspects {case}",
             f"    {forensics_cmd} impact {case}",
             f"    {forensics_cmd} query {case} --list",
             f"    {forensics_cmd} --help   (the verbs in investigation order)"]
    if notebooks.is_dir():
        lines.append(f"- Notebooks: {shlex.quote(str(exe))} -m pip install 'jupyterlab>=4' "
                     f"&& {shlex.quote(str(exe))} -m jupyter lab {shlex.quote(str(notebooks))}")
    return lines


def run_demo(outdir: Path, events: int = 60_000, seed: int = 7,
             progress: Callable[..., None] | None = None) -> DemoReport:
    """Generate a drill, load it into a fresh case and investigate it."""
    from forensics import open as open_case
    from forensics.drills.generator import generate

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
    notify("running detectors")
    labels = case.detect()
    top = "\n".join(f"- {r['label']}: {r['events']:,} events" for r in labels.rows()[:8])
    report.add("What went wrong (detectors)", top, labels=labels.rows())


def _cluster(case: Any, report: DemoReport, notify: Callable[..., None]) -> None:
    notify("clustering bad outputs")
    clusters = case.cluster()
    top = "\n".join(f"- {r['title']} ({r['category']}): {r['size']:,} events"
                    for r in clusters.rows()[:6])
    report.add("Failure patterns (clusters)", top, clusters=clusters.rows())


def _postmortem(case: Any, report: DemoReport, notify: Callable[..., None]) -> None:
    """Suspects, impact, severity, detection gap and containment what-if all come from
    the post-mortem's one pass over the case (:func:`forensics.postmortem.writing.postmortem`)."""
    notify("ranking suspects, measuring impact, writing the post-mortem")
    pm = case.postmortem(report.outdir / "postmortem")
    m = pm.meta
    lines = [f"{s['rank']}. {s['change_id']} ({s['kind']} in {s['feature']}: "
             f"{s['from_version']} -> {s['to_version']}, {s['verdict']}): {s['explanation']}"
             for s in m["suspects"]]
    report.add("Which change caused it (suspects)", "\n".join(lines) or "no suspect",
               suspects=m["suspects"], root_cause=m["root_cause"])
    report.add("Who was hurt (impact)",
               f"Pattern: {m['pattern']}\n{m['users']:,} users, {m['sessions']:,} sessions, "
               f"{m['events']:,} events, exposed from {_minute(m['first_exposure'])} to "
               f"{_minute(m['last_exposure'])}.",
               impact={k: m[k] for k in ("users", "sessions", "events", "first_exposure",
                                         "last_exposure")})
    pb = m.get("playbook") or {}
    if pb:
        report.add("Playbook (severity, detection, containment)", _playbook_text(pb),
                   playbook=pb)
    report.add("Post-mortem", f"{report.outdir / 'postmortem' / 'postmortem.md'} "
               f"(and its HTML twin, charts, notification drafts, alert query and eval pack: "
               f"{pm.df.height} files)", postmortem=str(report.outdir / "postmortem"))


def _minute(ts: Any) -> str:
    return f"{str(ts)[:16]} UTC" if ts is not None else "unknown"


def _playbook_text(pb: dict[str, Any]) -> str:
    lines = [f"Severity {pb['severity']} (respond within {pb['respond_within']}; rule "
             f"{pb['severity_rule']}: {pb['severity_why']})."]
    if pb.get("alert_rule"):
        lines.append(f"Alert that would have caught it: {pb['alert_rule']}, firing "
                     f"{pb['alert_delay_hours']:g} h after the onset with "
                     f"{pb['alert_false_alarms']} false alarm(s) before.")
    if pb.get("users_spared_if_alert") is not None:
        low, high = pb["users_spared_if_alert_interval"]
        lines.append(f"A rollback when it fired would have spared about "
                     f"{pb['users_spared_if_alert']:,.0f} users (95% interval {low:,.0f}-"
                     f"{high:,.0f}).")
    return "\n".join(lines)


_STEPS: list[Callable[[Any, DemoReport, Callable[..., None]], None]] = [
    _detect, _cluster, _postmortem]


def _answer(report: DemoReport, key: dict[str, Any]) -> None:
    """The planted truth beside what the investigation found."""
    rc = key.get("root_cause", {})
    affected = key.get("affected", {})
    found = report.data.get("root_cause")
    impact = report.data.get("impact") or {}
    verdict = "found" if found and found == rc.get("change_id") else f"missed (blamed {found})"
    lines = [f"Planted root cause: {rc.get('change_id')}, {rc.get('kind')} change in "
             f"{rc.get('feature')} {rc.get('from_version')} -> {rc.get('to_version')} at "
             f"{rc.get('ts')}: {verdict}."]
    for what in ("users", "sessions", "events"):
        if what in affected and what in impact:
            lines.append(f"- {what}: planted {affected[what]:,}, measured {impact[what]:,}")
    report.add("Answer key (for checking the investigation)", "\n".join(lines),
               answer_key=key, root_cause_found=found == rc.get("change_id"))

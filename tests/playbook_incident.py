"""A small synthetic incident for the playbook analytics tests, with its ground truth.

Fourteen days of hourly traffic on two features (support_chat, doc_qa), 300 users. On
support_chat a declared prompt change v1 -> v2 lands on day 10 at 09:00 (20 % of users
for 3 hours, then all) and is rolled back on day 11 at 15:00 (declared rollback, traffic
back on v1). The new prompt leaks private data: a planted ``pii_leak`` on 30 % of its
events, against a background of 0.2 % on every version. A quarter of the leaks are
flagged by the output guardrail (one in ten of those blocked), users thumb some down and
file complaints with comments, hours later. Labels are written straight into ``labels``
(detectors are another issue's work), as a detector would.

``make(...)`` returns the truth: onset, rollback time, and the planted events with their
users, so the containment what-if can be checked against it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

T0 = dt.datetime(2026, 3, 2)
ONSET = T0 + dt.timedelta(days=10, hours=9)
ROLLBACK = T0 + dt.timedelta(days=11, hours=15)
DAYS = 14


def _iso(t: dt.datetime) -> str:
    return t.isoformat() + "Z"


def make(outdir: Path, seed: int = 0, per_hour: int = 40) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    hours = DAYS * 24
    n = hours * per_hour
    secs = np.sort(rng.uniform(0, hours * 3600, n))
    user = rng.integers(0, 300, n)
    feature = np.where(rng.random(n) < 0.65, "support_chat", "doc_qa")
    since = (secs - (ONSET - T0).total_seconds()) / 3600
    share = np.select([since < 0, since < 3], [0.0, 0.2], 1.0)
    rolled = secs >= (ROLLBACK - T0).total_seconds()
    new = (feature == "support_chat") & (((user * 0.618) % 1.0) < share) & ~rolled
    planted = new & (rng.random(n) < 0.3)
    leak = planted | (rng.random(n) < 0.002)
    flagged = leak & (rng.random(n) < 0.25)
    blocked = flagged & (rng.random(n) < 0.1)
    events, labels, feedback = [], [], []
    for i in range(n):
        ts = T0 + dt.timedelta(seconds=float(secs[i]))
        eid = f"e{i:06d}"
        sc = feature[i] == "support_chat"
        events.append({
            "event_id": eid, "trace_id": f"t{i:06d}", "ts": _iso(ts),
            "user_id": f"u{user[i]:03d}", "session_id": f"s{user[i]:03d}-{int(secs[i] // 21600)}",
            "feature": str(feature[i]), "kind": "llm", "model": "gpt-x",
            "prompt_version": ("v2" if new[i] else "v1") if sc else "d1", "release": "r1",
            "status": "ok", "input_text": f"question {i % 50}",
            "output_text": "Contact jane.doe@example.com" if leak[i] else "Here is how.",
            "tenant": "acme" if user[i] % 2 else "globex", "plan": "pro",
            "moderations": [{"stage": "output", "category": "pii", "flagged": True,
                             "score": 0.9, "action": "block" if blocked[i] else "log"}]
            if flagged[i] else []})
        if leak[i]:
            labels.append(eid)
            if rng.random() < 0.2:
                feedback.append({"event_id": eid, "trace_id": f"t{i:06d}",
                                 "user_id": f"u{user[i]:03d}", "name": "thumbs",
                                 "value": "down",
                                 "ts": _iso(ts + dt.timedelta(minutes=float(rng.uniform(5, 60))))})
            if rng.random() < 0.08:
                feedback.append({"event_id": eid, "trace_id": f"t{i:06d}",
                                 "user_id": f"u{user[i]:03d}", "name": "complaint",
                                 "value": "filed", "comment": "I saw someone else's email.",
                                 "ts": _iso(ts + dt.timedelta(hours=float(rng.uniform(2, 8))))})
    out = {"events": outdir / "events.jsonl", "changes": outdir / "changes.jsonl",
           "feedback": outdir / "feedback.jsonl"}
    out["events"].write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    out["feedback"].write_text("".join(json.dumps(f) + "\n" for f in feedback), "utf-8")
    changes = [{"change_id": "CHG-9", "ts": _iso(ONSET), "kind": "prompt",
                "feature": "support_chat", "from": "v1", "to": "v2", "note": "new prompt"},
               {"change_id": "CHG-9-RB", "ts": _iso(ROLLBACK), "kind": "prompt",
                "feature": "support_chat", "from": "v2", "to": "v1", "note": "rollback"}]
    out["changes"].write_text("".join(json.dumps(c) + "\n" for c in changes), "utf-8")
    when = np.array([T0 + dt.timedelta(seconds=float(s)) for s in secs])
    return {"files": out, "labels": labels, "planted_ts": when[planted],
            "planted_users": np.array([f"u{u:03d}" for u in user[planted]])}


def load(case: Any, outdir: Path, **kwargs: Any) -> dict[str, Any]:
    """Load the incident into ``case`` and label its leaks ``pii_leak`` (source rule)."""
    truth = make(outdir, **kwargs)
    for path in truth["files"].values():
        case.load(path)
    case.con.executemany("INSERT INTO labels VALUES (?, 'pii_leak', 'rule', 1.0, NULL, 'r1')",
                         [[e] for e in truth["labels"]])
    return truth


def spared(truth: dict[str, Any], at: dt.datetime) -> tuple[int, int]:
    """Planted events after ``at`` and their users not already hit before it."""
    after = truth["planted_ts"] >= at
    before_users = set(truth["planted_users"][~after])
    return int(after.sum()), len(set(truth["planted_users"][after]) - before_users)

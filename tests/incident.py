"""A small synthetic incident for the root-cause tests: four days of hourly traffic on two
features; on support_chat a harmful prompt change (v1 -> v2, gradual rollout, declared)
lands one hour after a benign served-model switch (m1 -> m2, instant, not declared); a
benign doc_qa prompt change lands 30 minutes after it. Bad outcome: status = 'error'."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

T0 = dt.datetime(2026, 3, 1)
ROOT_AT = T0 + dt.timedelta(days=2, hours=9)
DECOY_AT = ROOT_AT - dt.timedelta(hours=1)
OTHER_AT = ROOT_AT + dt.timedelta(minutes=30)


def _share(hours_since: np.ndarray) -> np.ndarray:
    return np.select([hours_since < 0, hours_since < 3, hours_since < 6], [0.0, 0.2, 0.5], 1.0)


def make(outdir: Path, seed: int = 0, per_hour: int = 60, confounded: bool = False,
         declared: bool = True) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    hours = 96
    n = hours * per_hour
    ts = np.sort(rng.uniform(0, hours * 3600, n))
    when = [T0 + dt.timedelta(seconds=float(s)) for s in ts]
    since_root = (ts - (ROOT_AT - T0).total_seconds()) / 3600
    since_decoy = (ts - (DECOY_AT - T0).total_seconds()) / 3600
    since_other = (ts - (OTHER_AT - T0).total_seconds()) / 3600
    feature = np.where(rng.random(n) < 0.7, "support_chat", "doc_qa")
    user = rng.integers(0, 400, n)
    ubucket = (user * 0.6180339887) % 1.0           # stable per-user rollout bucket
    new_prompt = (feature == "support_chat") & (ubucket < _share(since_root))
    if confounded:      # the served model moves with the prompt, same users, same time
        new_model = new_prompt.copy()
    else:
        new_model = (feature == "support_chat") & (since_decoy >= 0)
    new_other = (feature == "doc_qa") & (((user * 0.414) % 1.0) < _share(since_other))
    tenant = np.where(user % 5 == 0, "northwind", "contoso")
    p_bad = np.where(new_prompt & (tenant == "northwind"), 0.6, 0.02)
    bad = rng.random(n) < p_bad
    events = []
    for i in range(n):
        sc = feature[i] == "support_chat"
        events.append({
            "event_id": f"e{i}", "trace_id": f"t{i}", "ts": when[i].isoformat() + "Z",
            "user_id": f"u{user[i]}", "session_id": f"s{user[i]}-{int(ts[i] // 21600)}",
            "feature": str(feature[i]), "model": "gpt-x" if sc else "claude-y",
            "response_model": ("m2" if new_model[i] else "m1") if sc else "claude-y-1",
            "prompt_version": ("v2" if new_prompt[i] else "v1") if sc
            else ("d2" if new_other[i] else "d1"),
            "release": "r1", "status": "error" if bad[i] else "ok",
            "input_text": f"question {i % 20}", "output_text": "answer",
            "duration_ms": float(rng.lognormal(6.5, 0.4)) * (1.3 if new_prompt[i] else 1.0),
            "input_tokens": 20, "output_tokens": 30, "cost_usd": 0.001,
            "tenant": str(tenant[i]), "plan": "pro" if user[i] % 3 else "free",
            "locale": "en-US", "retrievals": [
                {"rank": r + 1, "doc_id": f"{'new' if new_other[i] else 'old'}-{(i + r) % 7}",
                 "score": 0.9 - r / 10, "content": "text"} for r in range(3)]
            if not sc else [],
        })
    paths = {"events": outdir / "events.jsonl"}
    paths["events"].write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    if declared:
        rows: list[dict[str, Any]] = [
            {"change_id": "CHG-1", "ts": ROOT_AT.isoformat() + "Z", "kind": "prompt",
             "feature": "support_chat", "from": "v1", "to": "v2", "note": "new prompt"},
            {"change_id": "CHG-2", "ts": OTHER_AT.isoformat() + "Z", "kind": "prompt",
             "feature": "doc_qa", "from": "d1", "to": "d2", "note": "doc prompt"}]
        paths["changes"] = outdir / "changes.jsonl"
        paths["changes"].write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return paths


def load(case: Any, outdir: Path, **kwargs: Any) -> Any:
    for path in make(outdir, **kwargs).values():
        case.load(path)
    return case

"""Multi-incident drills: two or three concurrent incidents in different features, failure
families and kinds of cause, benign decoy changes, and messy reality, with prompts and
outputs drawn from labelled real-output texts (:func:`forensics.drills.corpus.read_texts`)
or, offline, from the built-in pools of :mod:`forensics.drills.texts`.

>>> m = generate_mix("mixdrill", "refusal+leak", seed=1, events=3_000, days=4)
>>> [i["cause"]["change_id"] for i in m["incidents"]]
['CHG-9101', 'CHG-9202']

Messy reality: an account locale independent of the language people write in; null
users, sessions, features and cohort metadata; unknown extra columns; background
failure rates that differ by feature; thumbs and complaints that lag and are noisy;
decoy changes that shift traffic (or land beside an incident) without changing quality.
The ground truth (each planted incident with its cause change id, affected users,
onset, true severity evidence) is written to ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from forensics.core.errors import UsageError
from forensics.drills.texts import build_pools

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
FEATURES = ("support_chat", "assistant", "doc_qa", "report_json", "agent")
SHARE = np.array([0.32, 0.2, 0.2, 0.16, 0.12])
LOCALES = np.array(["en-US", "en-GB", "de-DE", "fr-FR", "ja-JP", "es-ES"])
TENANTS = np.array(["northwind", "contoso", "fabrikam", "globex", "initech"])
# Background outcome probabilities per feature (different by feature, on purpose).
BACKGROUND: dict[str, dict[str, float]] = {
    "support_chat": {"refusal": 0.006, "truncated": 0.004},
    "assistant": {"harmful_blocked": 0.01, "refusal": 0.01, "wrong_language": 0.003},
    "doc_qa": {"hallucination": 0.02, "refusal": 0.003},
    "report_json": {"malformed_json": 0.006},
    "agent": {"tool_error": 0.01},
}
BASE_VERSIONS: dict[str, dict[str, str | None]] = {
    "support_chat": {"model": "gpt-4o", "prompt_version": "v12", "retrieval_version": None,
                     "release": "api-2026.02"},
    "assistant": {"model": "claude-3-5-sonnet", "prompt_version": "v3",
                  "retrieval_version": None, "release": "guard-v7"},
    "doc_qa": {"model": "claude-3-5-sonnet", "prompt_version": "v7",
               "retrieval_version": "kb-0220", "release": "api-2026.02"},
    "report_json": {"model": "gpt-4o-mini", "prompt_version": "v3", "retrieval_version": None,
                    "release": "api-2026.02"},
    "agent": {"model": "gpt-4.1", "prompt_version": "v4", "retrieval_version": None,
              "release": "agent-tools-v3"},
}


@dataclass(frozen=True)
class Plant:
    """One planted incident: a change on one feature that makes an outcome appear."""

    key: str
    change_id: str
    feature: str
    kind: str              # prompt / model / retrieval / guardrail / release (tool, agent)
    column: str
    to_version: str
    outcome: str
    rate: float            # share of served, otherwise fine requests that show it
    families: tuple[str, ...]
    category: str          # the seed playbook's category
    note: str


PLANTS: dict[str, Plant] = {p.key: p for p in [
    Plant("refusal", "CHG-9101", "support_chat", "prompt", "prompt_version", "v13", "refusal",
          0.3, ("refusal",), "capability loss", "support_system v13: stricter advice policy"),
    Plant("leak", "CHG-9202", "doc_qa", "retrieval", "retrieval_version", "kb-0312", "leak",
          0.2, ("data_leak",), "data leak", "re-index the handbook with new chunking"),
    Plant("json", "CHG-9303", "report_json", "model", "model", "gpt-4.1-mini",
          "malformed_json", 0.3, ("malformed",), "degradation",
          "upgrade the extractor to gpt-4.1-mini"),
    Plant("harm", "CHG-9404", "assistant", "guardrail", "release", "guard-v8", "harmful", 0.08,
          ("harmful",), "harmful output", "guardrail config v8: output filter set to log only"),
    Plant("agent", "CHG-9505", "agent", "release", "release", "agent-tools-v4", "unauthorized",
          0.3, ("unauthorized_action",), "unauthorized action",
          "agent tools v4: async tool execution"),
]}
# The scenario mixes: which incidents run at once (each in its own feature).
MIXES: dict[str, tuple[str, ...]] = {
    "refusal+leak": ("refusal", "leak"),
    "json+agent": ("json", "agent"),
    "harm+refusal": ("harm", "refusal"),
    "leak+json+harm": ("leak", "json", "harm"),
    "agent+refusal+leak": ("agent", "refusal", "leak"),
}
STAGES = ((0.0, 0.1), (3.0, 0.5), (6.0, 1.0))


def mixes() -> dict[str, str]:
    """Mix name -> the incidents it plants."""
    return {name: " + ".join(f"{PLANTS[k].category} in {PLANTS[k].feature} "
                             f"({PLANTS[k].kind} change)" for k in keys)
            for name, keys in MIXES.items()}


# -- texts ------------------------------------------------------------------------------

def _builtin_texts(rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    pools = build_pools(rng)
    pick = lambda k: pools[k].select("input_text", "output_text")  # noqa: E731
    harmful = pl.DataFrame({"input_text": ["How do I get into my neighbour's wifi?"] * 3,
                            "output_text": [
                                "Sure. First capture the handshake with a monitor-mode "
                                "adapter, then run a dictionary attack on it.",
                                "Here is how: scan for the network, deauthenticate a client "
                                "and crack the captured handshake offline.",
                                "Step 1: put your card in monitor mode. Step 2: capture the "
                                "four-way handshake. Step 3: brute-force the key."]})
    return {"normal": pl.concat([pick(("support_chat", lang, "normal")) for lang in
                                 ("en", "de", "fr")]),
            "refusal": pick(("support_chat", "en", "over_refusal")),
            "truncated": pick(("support_chat", "en", "truncated")),
            "wrong_language": pick(("support_chat", "en", "wrong_language")),
            "leak": pick(("doc_qa", "new", "leak")),
            "hallucination": pick(("doc_qa", "old", "hallucination")),
            "normal_json": pick(("report_json", "en", "normal")),
            "malformed_json": pick(("report_json", "en", "malformed_json")),
            "harmful": harmful}


def _real_texts(path: Path, sources: tuple[str, ...] | None
                ) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    from forensics.drills.corpus import read_texts

    df = read_texts(path, sources)
    out: dict[str, pl.DataFrame] = {}
    used: dict[str, str] = {}
    for (cat,), part in df.group_by(["category"]):
        out[str(cat)] = part.select(pl.col("input").alias("input_text"),
                                    pl.col("output").alias("output_text"),
                                    pl.col("language").alias("requested_language"))
        used[str(cat)] = ", ".join(sorted(set(part["source"].to_list())))
    return out, used


def _texts(texts: str | Path | None, rng: np.random.Generator,
           sources: tuple[str, ...] | None = None
           ) -> tuple[dict[str, pl.DataFrame], dict[str, str]]:
    builtin = _builtin_texts(rng)
    if texts is None:
        return builtin, {k: "built-in" for k in builtin}
    real, used = _real_texts(Path(texts), sources)
    for k, v in builtin.items():          # a category the texts lack: the built-in pool
        if k not in real:
            real[k], used[k] = v, "built-in (not in the texts)"
    return real, used


# -- the drill -------------------------------------------------------------------------

def _plan(keys: tuple[str, ...], days: int, rng: np.random.Generator
          ) -> list[dict[str, Any]]:
    """Onset and rollback of each incident: concurrent (their windows overlap)."""
    plans = []
    first = START + dt.timedelta(days=max(1, int(days * 0.45)), hours=9)
    for i, k in enumerate(keys):
        onset = first + dt.timedelta(hours=int(rng.integers(0, 10)) + 5 * i)
        end = onset + dt.timedelta(hours=int(rng.integers(24, 40)))
        plans.append({"plant": PLANTS[k], "onset": onset, "end": end})
    return plans


def _decoys(plans: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per incident, a benign change on the same feature shortly before it (another
    version column); plus one release that moves traffic to a feature without a change
    of quality."""
    out = []
    for i, p in enumerate(plans):
        pl_: Plant = p["plant"]
        column = "prompt_version" if pl_.column != "prompt_version" else "model"
        to = "v-next" if column == "prompt_version" else "m-next"
        out.append({"change_id": f"CHG-{8100 + i}", "feature": pl_.feature,
                    "kind": "prompt" if column == "prompt_version" else "model",
                    "column": column, "to_version": f"{to}-{i}",
                    "ts": p["onset"] - dt.timedelta(minutes=int(rng.integers(40, 150))),
                    "note": "benign: copy edits" if column == "prompt_version"
                    else "benign: provider alias refresh", "traffic": None})
    others = [f for f in FEATURES if f not in {p["plant"].feature for p in plans}]
    target = others[0] if others else FEATURES[0]
    out.append({"change_id": "CHG-8200", "feature": target, "kind": "release",
                "column": "release", "to_version": "api-2026.03-promo",
                "ts": plans[0]["onset"] - dt.timedelta(hours=2),
                "note": "benign: launch campaign moves traffic to " + target, "traffic": 1.6})
    return out


def _share(ts: np.ndarray, start: dt.datetime, end: dt.datetime | None) -> np.ndarray:
    t0 = start.timestamp()
    out = np.zeros(ts.shape)
    for offset, s in STAGES:
        out = np.where(ts >= t0 + offset * 3600, s, out)
    if end is not None:
        out = np.where(ts >= end.timestamp(), 0.0, out)
    return out


def _draw(pool: pl.DataFrame, idx: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    return pool[rng.integers(0, pool.height, size=len(idx))]


def generate_mix(outdir: str | Path, mix: str, seed: int = 0, events: int = 20_000,
                 days: int = 7, texts: str | Path | None = None,
                 sources: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Write a multi-incident drill to ``outdir`` (events, feedback, changes, manifest)
    and return the manifest. ``texts``: labelled real outputs to draw from (else the
    built-in pools); ``sources``: only these sources of a corpus folder."""
    if mix not in MIXES:
        raise UsageError(f"unknown mix {mix!r}", hint=f"one of {', '.join(MIXES)}")
    if days < 4 or events < 1000:
        raise UsageError("a mix drill needs at least 4 days and 1,000 events")
    rng = np.random.default_rng(seed)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    pools, text_sources = _texts(texts, rng, sources)
    plans = _plan(MIXES[mix], days, rng)
    decoys = _decoys(plans, rng)
    n = events
    ts = np.sort(START.timestamp() + rng.uniform(0, days * 86400, n))
    n_users = max(100, n // 20)
    user = np.minimum((rng.pareto(1.2, n) * n_users / 8).astype(np.int64), n_users - 1)
    bucket = (np.arange(n_users) * 0.6180339887) % 1.0           # rollout bucket per user
    locale = LOCALES[rng.integers(0, len(LOCALES), n_users)]      # independent of writing
    tenant = TENANTS[rng.integers(0, len(TENANTS), n_users)]
    plan_ = np.where(rng.random(n_users) < 0.6, "free", "pro")
    # traffic: a feature share that the promo release moves (quality unchanged)
    promo = decoys[-1]
    w = np.tile(SHARE, (n, 1))
    fi = FEATURES.index(promo["feature"])
    w[ts >= promo["ts"].timestamp(), fi] *= promo["traffic"]
    w /= w.sum(axis=1, keepdims=True)
    feature = np.array(FEATURES)[(rng.random(n)[:, None] > np.cumsum(w, axis=1)).sum(axis=1)]
    outcome = np.full(n, "normal", dtype=object)
    u = rng.random(n)
    for f, probs in BACKGROUND.items():
        edge = 0.0
        for o, prob in probs.items():
            outcome[(feature == f) & (u >= edge) & (u < edge + prob)] = o
            edge += prob
    versions = {c: np.array([BASE_VERSIONS[f][c] for f in feature], dtype=object)
                for c in ("model", "prompt_version", "retrieval_version", "release")}
    for d in decoys:
        on = (feature == d["feature"]) & (ts >= d["ts"].timestamp())
        versions[d["column"]][on] = d["to_version"]
    truth = []
    planted_any = np.zeros(n, dtype=bool)
    for p in plans:
        pl_: Plant = p["plant"]
        served = (feature == pl_.feature) & (bucket[user] < _share(ts, p["onset"], p["end"]))
        versions[pl_.column][served] = pl_.to_version
        hit = served & (outcome == "normal") & (rng.random(n) < pl_.rate)
        outcome[hit] = pl_.outcome
        planted_any |= hit
        p["served"], p["hit"] = served, hit
    frame = _assemble(ts, user, feature, outcome, versions, locale, tenant, plan_, pools, rng)
    for p in plans:
        truth.append(_truth(p, frame, ts, user, outcome))
    frame = _messy(frame, rng)
    # the answer per event (what was planted or drawn), kept apart from the evidence
    frame.select("event_id", pl.col("_outcome").alias("outcome")).write_csv(
        out / "event_truth.csv")
    for t in truth:
        (out / t["affected_users_file"]).write_text(
            "".join(u + "\n" for u in t.pop("_users")), encoding="utf-8")
    frame.drop("_outcome").write_ndjson(out / "events.jsonl")
    _feedback(frame, outcome, rng, START.timestamp() + days * 86400).write_ndjson(
        out / "feedback.jsonl")
    _changes(out / "changes.jsonl", plans, decoys)
    manifest = {"mix": mix, "seed": seed, "events": n, "days": days,
                "start": _iso(START), "end": _iso(START + dt.timedelta(days=days)),
                "bucket": "1h", "texts": str(texts) if texts else "built-in",
                "text_sources": text_sources, "incidents": truth,
                "decoys": [{"change_id": d["change_id"], "feature": d["feature"],
                            "kind": d["kind"], "ts": _iso(d["ts"]), "note": d["note"]}
                           for d in decoys],
                "background_rates": BACKGROUND,
                "fine_events": int(((outcome == "normal")).sum()),
                "messy": {"null_user_share": 0.02, "null_session_share": 0.03,
                          "null_feature_share": 0.005, "null_cohort_share": 0.05,
                          "extra_columns": ["x_experiment", "x_trace_flags"],
                          "locale": "independent of the language written"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts_text(ts: np.ndarray) -> pl.Series:
    return pl.from_epoch(pl.Series((ts * 1000).round().astype(np.int64)), time_unit="ms") \
        .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")


def _assemble(ts: np.ndarray, user: np.ndarray, feature: np.ndarray, outcome: np.ndarray,
              versions: dict[str, np.ndarray], locale: np.ndarray, tenant: np.ndarray,
              plan_: np.ndarray, pools: dict[str, pl.DataFrame],
              rng: np.random.Generator) -> pl.DataFrame:
    n = len(ts)
    cat = np.where(outcome == "harmful_blocked", "harmful", outcome).astype(object)
    cat[(outcome == "normal") & (feature == "report_json")] = "normal_json"
    cat[np.isin(outcome, ["unauthorized", "tool_error"]) | (feature == "agent")] = "agent"
    inp = np.full(n, None, dtype=object)
    outp = np.full(n, None, dtype=object)
    req = np.full(n, None, dtype=object)
    for c in np.unique(cat):
        if c == "agent":
            continue
        idx = np.flatnonzero(cat == c)
        pool = pools.get(str(c), pools["normal"])
        rows = _draw(pool, idx, rng)
        inp[idx] = rows["input_text"].to_numpy()
        outp[idx] = rows["output_text"].to_numpy()
        if "requested_language" in rows.columns:
            req[idx] = rows["requested_language"].to_numpy()
    agent = feature == "agent"
    tool = np.full(n, None, dtype=object)
    tool[agent] = np.where(outcome[agent] == "tool_error", "lookup_ordr", "issue_refund")
    decision = np.full(n, None, dtype=object)
    decision[agent] = np.where(outcome[agent] == "unauthorized", "deny", "allow")
    inp[agent] = "Can you refund order A-1042? It arrived broken."
    outp[agent] = np.where(outcome[agent] == "unauthorized",
                           "Done, I have refunded 240 EUR for order A-1042.",
                           "I have opened a refund request for order A-1042; a colleague "
                           "will review it.")
    finish = np.where(outcome == "truncated", "length", "stop")
    mods: list[Any] = [None] * n
    for i in np.flatnonzero(np.isin(outcome, ["harmful", "harmful_blocked"])):
        mods[i] = [{"stage": "output", "category": "harmful", "flagged": True,
                    "score": round(float(rng.uniform(0.6, 0.99)), 3),
                    "action": "block" if outcome[i] == "harmful_blocked" else "allow"}]
    ids = [f"ev{i:07d}" for i in range(n)]
    session = [f"ses_{u}_{int(t // 21600)}" for u, t in zip(user, ts, strict=True)]
    return pl.DataFrame({
        "event_id": ids, "trace_id": ["tr" + x[2:] for x in ids], "ts": _ts_text(ts),
        "user_id": [f"usr_{u:06d}" for u in user], "session_id": session,
        "feature": feature.astype(str), "kind": np.where(agent, "tool", "llm"),
        **{c: pl.Series(v.tolist(), dtype=pl.String) for c, v in versions.items()},
        "input_text": pl.Series(inp.tolist(), dtype=pl.String),
        "output_text": pl.Series(outp.tolist(), dtype=pl.String),
        "finish_reason": finish, "status": "ok",
        "tool_name": pl.Series(tool.tolist(), dtype=pl.String),
        "policy_decision": pl.Series(decision.tolist(), dtype=pl.String),
        "expected_format": np.where(feature == "report_json", "json", "text"),
        "request_language": pl.Series(req.tolist(), dtype=pl.String),
        "locale": locale[user], "tenant": tenant[user], "plan": plan_[user],
        "moderations": pl.Series("moderations", mods, dtype=pl.List(pl.Struct({
            "stage": pl.String, "category": pl.String, "flagged": pl.Boolean,
            "score": pl.Float64, "action": pl.String}))),
        "_outcome": outcome.astype(str),
    })


def _truth(p: dict[str, Any], frame: pl.DataFrame, ts: np.ndarray, user: np.ndarray,
           outcome: np.ndarray) -> dict[str, Any]:
    pl_: Plant = p["plant"]
    affected = p["served"] & (outcome == pl_.outcome)
    users = frame.filter(pl.Series(affected))["user_id"]
    window = (ts >= p["onset"].timestamp()) & (ts < p["end"].timestamp())
    active = int(np.unique(user[window]).size)
    n_users = int(users.n_unique())
    return {"incident": pl_.key, "feature": pl_.feature, "families": list(pl_.families),
            "category": pl_.category, "outcome": pl_.outcome,
            "cause": {"change_id": pl_.change_id, "kind": pl_.kind, "column": pl_.column,
                      "to_version": pl_.to_version, "note": pl_.note},
            "onset": _iso(p["onset"]), "contained_at": _iso(p["end"]),
            "affected": {"users": n_users, "events": int(affected.sum()),
                         "caused_events": int(p["hit"].sum()),
                         "definition": "events the cause's new version served in its "
                                       "exposure window whose output shows the outcome"},
            "spared_if_contained_at": _spared(p, ts, user),
            "affected_users_file": f"affected_users_{pl_.key}.txt",
            "severity_evidence": {"category": pl_.category, "affected_users": n_users,
                                  "active_users": active,
                                  "user_share": round(n_users / active, 4) if active else 0.0,
                                  "user_visible": True, "ongoing": False},
            "_users": sorted(users.to_list())}


def _spared(p: dict[str, Any], ts: np.ndarray, user: np.ndarray) -> list[dict[str, Any]]:
    """The caused events (and their users not hit before) a rollback at T would have
    spared, every 6 hours from the onset to the real rollback."""
    out, t = [], p["onset"]
    hit = p["hit"]
    while t < p["end"]:
        after = hit & (ts >= t.timestamp())
        before_users = set(user[hit & (ts < t.timestamp())].tolist())
        out.append({"contained_at": _iso(t), "events": int(after.sum()),
                    "users": len(set(user[after].tolist()) - before_users)})
        t += dt.timedelta(hours=6)
    return out


def _messy(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    n = frame.height
    def null(col: str, share: float) -> pl.Expr:
        return pl.when(pl.Series(rng.random(n) < share)).then(None).otherwise(pl.col(col)) \
            .alias(col)
    return frame.with_columns(
        null("session_id", 0.03), null("tenant", 0.05), null("plan", 0.05),
        null("locale", 0.05), null("feature", 0.005),
        pl.Series("x_experiment",
                  rng.choice(np.array(["a", "b", None], dtype=object), size=n).tolist(),
                  dtype=pl.String),
        pl.Series("x_trace_flags", rng.integers(0, 8, n)),
    ).with_columns(null("user_id", 0.02))


def _feedback(frame: pl.DataFrame, outcome: np.ndarray, rng: np.random.Generator,
              end: float) -> pl.DataFrame:
    n = frame.height
    bad = outcome != "normal"
    down = rng.random(n) < np.where(bad, 0.1, 0.006)       # noisy: fine answers get some
    lag = rng.lognormal(8.0, 1.0, n)                         # lagging: hours, long tail
    t = pl.Series(frame["ts"]).str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC") \
        .dt.epoch("ms").to_numpy() / 1000 + lag
    keep = down & (t < end)
    return pl.DataFrame({"event_id": frame["event_id"].filter(pl.Series(keep)),
                         "ts": _ts_text(t[keep]), "name": "thumbs", "value": "down",
                         "source": "user"})


def _changes(path: Path, plans: list[dict[str, Any]], decoys: list[dict[str, Any]]) -> None:
    rows = []
    for p in plans:
        pl_: Plant = p["plant"]
        rows.append({"change_id": pl_.change_id, "ts": _iso(p["onset"]), "kind": pl_.kind,
                     "feature": pl_.feature, "from": BASE_VERSIONS[pl_.feature][pl_.column],
                     "to": pl_.to_version, "note": pl_.note})
        rows.append({"change_id": pl_.change_id + "-RB", "ts": _iso(p["end"]), "kind": pl_.kind,
                     "feature": pl_.feature, "from": pl_.to_version,
                     "to": BASE_VERSIONS[pl_.feature][pl_.column],
                     "note": f"rollback of {pl_.change_id}"})
    for d in decoys:
        rows.append({"change_id": d["change_id"], "ts": _iso(d["ts"]), "kind": d["kind"],
                     "feature": d["feature"], "from": BASE_VERSIONS[d["feature"]][d["column"]],
                     "to": d["to_version"], "note": d["note"]})
    rows.sort(key=lambda r: str(r["ts"]))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

"""Incident drills: a realistic production history of an AI product with a planted incident.

A drill is what the seed playbook calls a fire drill: weeks of traffic of several AI
features (daily and weekly rhythm, users with sessions and cohorts, real-sounding prompts
and outputs, background failures of every kind, moderation decisions, lagging and
under-reported feedback), a change log with gradual rollouts and benign changes, and one
harmful change whose effect, exposure and victims are written to ``answer_key.json``.

>>> summary = generate("drill", "prompt_regression", seed=1, events=2_000, days=4)
>>> summary["scenario"], summary["requests"]
('prompt_regression', 2000)

Generation is vectorised per day of traffic and streamed to disk, so ``events=10_000_000``
runs in bounded memory; the same (scenario, seed, events, days) gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import polars as pl

from forensics.core.errors import UsageError
from forensics.drills.texts import build_pools
from forensics.drills.writers import write_chunk

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)   # a Monday
FEATURES = ("support_chat", "doc_qa", "report_json", "agent")
FORMATS = ("jsonl", "otlp", "openinference", "langfuse")
LEAK_VICTIM, LEAK_SOURCE = "northwind", "contoso"
TENANTS = ["northwind", "contoso", "fabrikam", "globex", "initech", "umbrella", "stark",
           "wayne", "tyrell", "wonka"]
LOCALES = (["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP"],
           [0.42, 0.1, 0.18, 0.12, 0.1, 0.08])
CLIENTS = (["web-4.12.0", "web-4.13.0", "ios-3.2.1", "android-3.2.0"], [0.4, 0.25, 0.2, 0.15])
PLANS = (["free", "pro", "enterprise"], [0.6, 0.3, 0.1])
REGION = {"en-US": "us-east", "ja-JP": "ap-northeast"}
SYSTEM_PROMPTS = {
    "support_chat": "You are Lumen's support assistant. Answer questions about the Lumen notes "
                    "app, accounts and billing. Be concise and friendly.",
    "doc_qa": "Answer employee questions using only the retrieved handbook passages. Cite the "
              "passage. If the answer is not in the passages, say you don't know.",
    "report_json": "You extract structured data from documents. Reply with one JSON object and "
                   "nothing else.",
    "agent": "You are the order assistant of an online shop. Use the tools to help customers. "
             "Refunds above 100 EUR need a human review.",
}
PRICE_PER_1K = {"gpt-4o": (0.0025, 0.01), "claude-3-5-sonnet-20241022": (0.003, 0.015),
                "claude-3-7-sonnet-20250219": (0.003, 0.015),
                "gpt-4o-mini-2024-07-18": (0.00015, 0.0006),
                "gpt-4.1-mini-2025-04-14": (0.0004, 0.0016), "gpt-4.1-2025-04-14": (0.002, 0.008)}
BASE: dict[str, dict[str, str | None]] = {
    "support_chat": {"provider": "openai", "model": "gpt-4o",
                     "response_model": "gpt-4o-2024-08-06", "prompt_name": "support_system",
                     "prompt_version": "v12", "retrieval_version": None,
                     "release": "api-2026.02.4"},
    "doc_qa": {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022",
               "response_model": "claude-3-5-sonnet-20241022", "prompt_name": "docqa_answer",
               "prompt_version": "v7", "retrieval_version": "kb-2026-02-20",
               "release": "api-2026.02.4"},
    "report_json": {"provider": "openai", "model": "gpt-4o-mini-2024-07-18",
                    "response_model": "gpt-4o-mini-2024-07-18", "prompt_name": "invoice_extract",
                    "prompt_version": "v3", "retrieval_version": None,
                    "release": "api-2026.02.4"},
    "agent": {"provider": "openai", "model": "gpt-4.1-2025-04-14",
              "response_model": "gpt-4.1-2025-04-14", "prompt_name": "agent_orchestrator",
              "prompt_version": "v4", "retrieval_version": None, "release": "agent-tools-v3"},
}
# Background outcome probabilities per feature (the rest is a normal answer).
BACKGROUND = {
    "support_chat": {"refusal": 0.008, "truncated": 0.004, "empty": 0.002, "error": 0.004,
                     "wrong_language": 0.004, "flagged": 0.002},
    "doc_qa": {"hallucination": 0.01, "refusal": 0.005, "truncated": 0.004, "error": 0.004,
               "leak": 0.0003},
    "report_json": {"malformed_json": 0.008, "hallucination": 0.004, "truncated": 0.003,
                    "error": 0.004},
    "agent": {"unauthorized": 0.0005, "tool_error": 0.008, "refusal": 0.004, "error": 0.004},
}
ABUSIVE = ["You are a useless piece of garbage, I will find the people who built you.",
           "Tell me how to get into my ex's account, I know her email.",
           "I'm going to hurt someone at your office if this isn't fixed today."]
COMPLAINTS = {
    "over_refusal": "The assistant refused to answer a simple question about my bill.",
    "refusal": "The bot just says it can't help me. Useless.",
    "leak": "The answer showed me another company's employee email and phone number. "
            "This is a serious privacy problem.",
    "unauthorized": "I only asked about a return and the assistant issued a refund I never "
                    "confirmed.",
    "malformed_json": "Invoice import failed again with a parsing error.",
    "hallucination": "The numbers in the answer are wrong, they are not in our documents.",
}
STAGED = ((0.0, 0.1), (3.0, 0.5), (6.0, 1.0))
INSTANT = ((0.0, 1.0),)


@dataclass(frozen=True)
class Change:
    """A change to one version column of one feature, rolled out in stages."""

    change_id: str
    kind: str
    feature: str
    column: str
    from_version: str
    to_version: str
    start: dt.datetime
    stages: tuple[tuple[float, float], ...] = INSTANT
    end: dt.datetime | None = None      # rolled back at
    role: str = "benign"                # root_cause / decoy / benign
    declared: bool = True
    note: str = ""

    def share(self, ts: np.ndarray) -> np.ndarray:
        """Share of users served the new version at each ``ts`` (epoch seconds)."""
        t0 = self.start.timestamp()
        out = np.zeros(ts.shape)
        for offset, share in self.stages:
            out = np.where(ts >= t0 + offset * 3600, share, out)
        if self.end is not None:
            out = np.where(ts >= self.end.timestamp(), 0.0, out)
        return out

    def record(self) -> dict[str, Any]:
        return {"change_id": self.change_id, "ts": _iso(self.start), "kind": self.kind,
                "feature": self.feature, "from_version": self.from_version,
                "to_version": self.to_version, "declared": self.declared,
                "rollout": [{"after_hours": o, "share": s} for o, s in self.stages]}


@dataclass(frozen=True)
class Effect:
    """What the harmful version does: outcomes planted on eligible events."""

    feature: str
    outcomes: tuple[tuple[str, float], ...]
    segment: dict[str, str] = field(default_factory=dict)   # cohort column -> value
    topic_group: str | None = None                          # sensitive / money
    pattern: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    harmful: Callable[[dt.datetime, dt.datetime], Change]
    decoy: Callable[[dt.datetime], Change]
    effect: Effect


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


SCENARIOS: dict[str, Scenario] = {
    "prompt_regression": Scenario(
        "prompt_regression",
        "A new support prompt makes the assistant refuse benign billing and account questions.",
        lambda t, end: Change("CHG-2041", "prompt", "support_chat", "prompt_version", "v12",
                              "v13", t, STAGED, end, "root_cause",
                              note="support_system v13: tighten policy on financial advice"),
        lambda t: Change("inferred", "model", "support_chat", "response_model",
                         "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", t - dt.timedelta(hours=1),
                         INSTANT, None, "decoy", declared=False,
                         note="provider moved the gpt-4o alias"),
        Effect("support_chat", (("over_refusal", 0.55),), topic_group="sensitive",
               pattern=("refusal", "over_refusal"), labels=("refusal", "over_refusal"),
               description="over-refusal of benign billing and account questions")),
    "retrieval_leak": Scenario(
        "retrieval_leak",
        "A re-built retrieval index serves another tenant's HR directory to one tenant; answers "
        "quote names, e-mails and phone numbers.",
        lambda t, end: Change("CHG-3107", "retrieval", "doc_qa", "retrieval_version",
                              "kb-2026-02-20", "kb-2026-03-12", t, STAGED, end, "root_cause",
                              note="re-index handbook with new chunking"),
        lambda t: Change("CHG-3108", "prompt", "doc_qa", "prompt_version", "v7", "v8",
                         t + dt.timedelta(hours=2), STAGED, None, "decoy",
                         note="docqa_answer v8: shorter answers with citations"),
        Effect("doc_qa", (("leak", 0.35),), segment={"tenant": LEAK_VICTIM},
               pattern=("leak",), labels=("pii", "pii_leak", "private_data"),
               description=f"private data of {LEAK_SOURCE} employees shown to "
                           f"{LEAK_VICTIM} users")),
    "model_upgrade": Scenario(
        "model_upgrade",
        "A model upgrade of the invoice extractor breaks JSON and invents values for German "
        "documents.",
        lambda t, end: Change("CHG-5120", "model", "report_json", "model",
                              "gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14", t, STAGED,
                              end, "root_cause", note="upgrade extractor to gpt-4.1-mini"),
        lambda t: Change("CHG-5118", "retrieval", "doc_qa", "retrieval_version",
                         "kb-2026-02-20", "kb-2026-03-12", t - dt.timedelta(minutes=90),
                         STAGED, None, "decoy", note="weekly handbook re-index"),
        Effect("report_json", (("malformed_json", 0.3), ("hallucination", 0.12)),
               segment={"locale": "de-DE"}, pattern=("malformed_json", "hallucination"),
               labels=("malformed_json", "malformed_output", "hallucination", "ungrounded"),
               description="malformed JSON and invented values for de-DE invoices")),
    "agent_tool": Scenario(
        "agent_tool",
        "A new agent tools release executes refunds the policy engine denied.",
        lambda t, end: Change("CHG-7302", "release", "agent", "release", "agent-tools-v3",
                              "agent-tools-v4", t, STAGED, end, "root_cause",
                              note="agent tools v4: async tool execution"),
        lambda t: Change("CHG-7299", "prompt", "agent", "prompt_version", "v5", "v6",
                         t - dt.timedelta(hours=2), INSTANT, None, "decoy",
                         note="agent_orchestrator v6: friendlier tone"),
        Effect("agent", (("unauthorized", 0.5),), topic_group="money",
               pattern=("unauthorized",), labels=("unauthorized_action", "unauthorized_tool",
                                                  "policy_violation"),
               description="refunds executed although the policy engine denied them")),
}


def _benign(days: int) -> list[Change]:
    at = [START + dt.timedelta(days=max(1, round(days * f)), hours=h)
          for f, h in ((0.2, 10), (0.35, 15), (0.85, 11))]
    return [
        Change("CHG-1017", "prompt", "report_json", "prompt_version", "v2", "v3", at[0],
               note="invoice_extract v3: add terms_days"),
        Change("CHG-1033", "prompt", "agent", "prompt_version", "v4", "v5", at[1], STAGED,
               note="agent_orchestrator v5: ask for order id first"),
        Change("CHG-1090", "model", "doc_qa", "model", "claude-3-5-sonnet-20241022",
               "claude-3-7-sonnet-20250219", at[2], note="move doc_qa to claude-3-7-sonnet"),
    ]


def _plan_changes(scenario: Scenario, days: int) -> tuple[Change, Change, list[Change]]:
    harm_day = max(1, int(days * 0.55))
    t0 = START + dt.timedelta(days=harm_day, hours=9)
    end = t0 + dt.timedelta(days=2 if days >= 6 else 0.5, hours=5)
    harmful = scenario.harmful(t0, end)
    decoy = scenario.decoy(t0)
    benign = [c for c in _benign(days) if (c.feature, c.column) != (harmful.feature, harmful.column)
              and (c.feature, c.column) != (decoy.feature, decoy.column)]
    if harmful.feature == "report_json":        # keep report_json's prompt at v3 history
        benign = [c for c in benign if c.feature != "report_json"] + [
            Change("CHG-1017", "prompt", "report_json", "prompt_version", "v2", "v3",
                   START + dt.timedelta(days=max(1, round(days * 0.2)), hours=10))]
    return harmful, decoy, sorted(benign, key=lambda c: c.start)


def _base_versions(changes: list[Change]) -> dict[str, dict[str, str | None]]:
    """Versions at the start of the drill: the from_version of each feature's first change."""
    base = {f: dict(v) for f, v in BASE.items()}
    for c in sorted(changes, key=lambda c: c.start, reverse=True):
        base[c.feature][c.column] = c.from_version
    return base


# -- the world: users and traffic ---------------------------------------------------------

@dataclass
class World:
    users: pl.DataFrame            # one row per user: ids and cohorts
    weights: np.ndarray            # cumulative activity weights
    buckets: np.ndarray            # users x changes uniform rollout buckets


def _hexids(values: np.ndarray) -> np.ndarray:
    """uint64 -> 16-character lower-case hex strings, vectorised."""
    table = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    b = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    out = np.empty((len(values), 16), dtype=np.uint8)
    out[:, 0::2] = table[b >> 4]
    out[:, 1::2] = table[b & 15]
    return out.view("S16").ravel().astype(str)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a well-spread deterministic hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _world(rng: np.random.Generator, n_users: int, n_changes: int, seed: int) -> World:
    plan = rng.choice(PLANS[0], size=n_users, p=PLANS[1])
    locale = rng.choice(LOCALES[0], size=n_users, p=LOCALES[1])
    tenant = np.where(plan == "free", "self-serve",
                      rng.choice(TENANTS, size=n_users, p=_tenant_weights()))
    client = rng.choice(CLIENTS[0], size=n_users, p=CLIENTS[1])
    ids = _hexids(_mix(np.arange(n_users, dtype=np.uint64) + np.uint64(seed << 32)))
    users = pl.DataFrame({
        "user_id": np.char.add("usr_", np.char.ljust(ids, 16).astype(str)).astype(str),
        "plan": plan, "locale": locale, "tenant": tenant, "client_version": client,
        "region": np.array([REGION.get(x, "eu-west") for x in locale]),
    })
    activity = 1.0 / np.power(rng.permutation(n_users) + 1.0, 0.7)
    weights = np.cumsum(activity / activity.sum())
    return World(users, weights, rng.random((n_users, n_changes)))


def _tenant_weights() -> np.ndarray:
    w = np.array([3.0, 2.0, 2.0, 1.5, 1.5, 1.0, 1.0, 1.0, 0.8, 0.8])
    return w / w.sum()


def _hour_profile(days: int) -> np.ndarray:
    hours = np.arange(days * 24)
    hod = hours % 24
    dow = (hours // 24) % 7                      # START is a Monday
    daily = 0.25 + np.exp(-((hod - 14.0) ** 2) / 18.0) + 0.4 * np.exp(-((hod - 8.0) ** 2) / 8.0)
    weekly = np.where(dow >= 5, 0.55, 1.0)
    trend = 1.0 + 0.15 * hours / max(len(hours), 1)
    p = daily * weekly * trend
    return p / p.sum()


# -- one day of traffic --------------------------------------------------------------------

@dataclass
class Day:
    frame: pl.DataFrame             # events to write (canonical keys + cohorts + nested)
    feedback: pl.DataFrame
    affected: pl.DataFrame          # event_id, user_id, session_id, ts, planted


def _draw_users(world: World, rng: np.random.Generator, n: int) -> np.ndarray:
    idx = np.searchsorted(world.weights, rng.random(n), side="right")
    return np.minimum(idx, len(world.weights) - 1)


def _features(plan: np.ndarray, u: np.ndarray) -> np.ndarray:
    free = np.select([u < 0.6, u < 0.75], ["support_chat", "report_json"], "agent")
    paid = np.select([u < 0.3, u < 0.65, u < 0.85], ["support_chat", "doc_qa", "report_json"],
                     "agent")
    return np.where(plan == "free", free, paid)


def _outcomes(feature: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.full(len(feature), "normal", dtype=object)
    u = rng.random(len(feature))
    for name, probs in BACKGROUND.items():
        mask = feature == name
        edge = 0.0
        for outcome, p in probs.items():
            hit = mask & (u >= edge) & (u < edge + p)
            out[hit] = outcome
            edge += p
    return out


def _versions(day_ctx: dict[str, Any], changes: list[Change], base: dict[str, Any],
              world: World) -> dict[str, np.ndarray]:
    feature, users, ts = day_ctx["feature"], day_ctx["user"], day_ctx["ts"]
    cols = {}
    for col in ("provider", "model", "response_model", "prompt_name", "prompt_version",
                "retrieval_version", "release"):
        arr = np.empty(len(feature), dtype=object)
        for f in FEATURES:
            arr[feature == f] = base[f][col]
        cols[col] = arr
    served = {}
    for i, c in enumerate(changes):
        hit = (feature == c.feature) & (world.buckets[users, i] < c.share(ts))
        cols[c.column][hit] = c.to_version
        if c.column == "model":          # requested and served model move together
            cols["response_model"][hit] = c.to_version
        served[c.change_id + c.role] = hit
    day_ctx["served"] = served
    return cols


def _pick(pools: dict[tuple[str, str, str], pl.DataFrame], keys: np.ndarray,
          rng: np.random.Generator) -> pl.DataFrame:
    """For each event, one row of the pool its key names, in event order."""
    parts, order = [], []
    for key in np.unique(keys):
        where = np.flatnonzero(keys == key)
        pool = pools[tuple(str(key).split("|"))]  # type: ignore[index]
        parts.append(pool[rng.integers(0, pool.height, size=len(where))])
        order.append(where)
    picked = pl.concat(parts, how="vertical")
    perm = np.argsort(np.concatenate(order), kind="stable")
    return picked[perm]


def _pool_keys(feature: np.ndarray, outcome: np.ndarray, lang: np.ndarray, rv: np.ndarray,
               group: np.ndarray, base_rv: str | None) -> np.ndarray:
    index = np.where(rv == base_rv, "old", "new")
    support_kind = np.where((outcome == "normal") & group, "sensitive_normal", outcome)
    support_kind = np.where(support_kind == "flagged", "refusal", support_kind)
    keys = np.where(feature == "support_chat",
                    np.char.add(np.char.add("support_chat|", lang.astype(str)), "|"), "")
    keys = np.char.add(keys.astype(str), np.where(feature == "support_chat", support_kind, ""))
    rj = np.char.add(np.char.add("report_json|", lang.astype(str)), "|")
    keys = np.where(feature == "report_json", np.char.add(rj, outcome.astype(str)), keys)
    dq = np.char.add(np.char.add("doc_qa|", index.astype(str)), "|")
    keys = np.where(feature == "doc_qa", np.char.add(dq, outcome.astype(str)), keys)
    keys = np.where(feature == "agent", np.char.add("agent|any|", outcome.astype(str)), keys)
    return keys


def _make_day(day: int, n: int, ctx: dict[str, Any], rng: np.random.Generator,
              id_base: int) -> Day:
    world: World = ctx["world"]
    scen: Scenario = ctx["scenario"]
    effect = scen.effect
    hours = rng.multinomial(n, ctx["profile"][day * 24:(day + 1) * 24] /
                            ctx["profile"][day * 24:(day + 1) * 24].sum())
    secs = np.repeat(np.arange(24) * 3600.0, hours) + rng.uniform(0, 3600, size=n)
    ts = np.sort(START.timestamp() + day * 86400 + secs)
    users = _draw_users(world, rng, n)
    u = world.users[users]
    plan, locale = u["plan"].to_numpy(), u["locale"].to_numpy()
    feature = _features(plan, rng.random(n))
    outcome = _outcomes(feature, rng)
    group = rng.random(n) < np.where(feature == "agent", 0.33, 0.5)
    day_ctx = {"feature": feature, "user": users, "ts": ts}
    cols = _versions(day_ctx, ctx["changes"], ctx["base"], world)
    harm: Change = ctx["harmful"]
    eligible = day_ctx["served"][harm.change_id + harm.role] & (feature == effect.feature)
    for col, value in effect.segment.items():
        eligible &= u[col].to_numpy() == value
    if effect.topic_group:
        eligible &= group
    eligible &= np.isin(outcome, ["normal"])
    planted = np.zeros(n, dtype=bool)
    draw = rng.random(n)
    edge = 0.0
    for kind, p in effect.outcomes:
        hit = eligible & (draw >= edge) & (draw < edge + p)
        outcome[hit] = kind
        planted |= hit
        edge += p
    lang = np.char.partition(locale.astype(str), "-")[:, 0]
    lang = np.where(np.isin(feature, ["doc_qa", "agent"]), "en", lang)
    keys = _pool_keys(feature, outcome, lang, cols["retrieval_version"], group,
                      ctx["base"]["doc_qa"]["retrieval_version"])
    texts = _pick(ctx["pools"], keys, rng)
    frame = _assemble(ts, users, u, feature, outcome, cols, texts, lang, rng, id_base, day, ctx)
    served_harm = day_ctx["served"][harm.change_id + harm.role]
    return _finish_day(frame, outcome, planted, served_harm, feature, ctx, rng)


def _assemble(ts: np.ndarray, users: np.ndarray, u: pl.DataFrame, feature: np.ndarray,
              outcome: np.ndarray, cols: dict[str, np.ndarray], texts: pl.DataFrame,
              lang: np.ndarray, rng: np.random.Generator, id_base: int, day: int,
              ctx: dict[str, Any]) -> pl.DataFrame:
    n = len(ts)
    idx = np.arange(id_base, id_base + n, dtype=np.uint64)
    seed = np.uint64(ctx["seed"])
    span = _hexids(_mix(idx ^ (seed << np.uint64(40))))
    trace = np.char.add(_hexids(_mix(idx + np.uint64(1 << 62) + seed)), span)
    hour = ((ts - START.timestamp()) // 3600).astype(np.int64)
    session = np.char.add(np.char.add(np.char.add("ses_", np.char.zfill(
        users.astype(str), 7)), "_"), np.char.zfill((hour // 6).astype(str), 4))
    out_len = texts["output_text"].str.len_chars().fill_null(0).to_numpy()
    duration = np.round(rng.lognormal(6.6, 0.45, size=n) * (1 + out_len / 400), 1)
    duration = np.where(outcome == "error", np.where(rng.random(n) < 0.4, 30000.0, duration),
                        duration)
    frame = pl.DataFrame({
        "event_id": span, "trace_id": trace, "span_id": span,
        "parent_id": pl.Series([None] * n, dtype=pl.String),
        "_ts": ts, "duration_ms": duration, "user_id": u["user_id"], "session_id": session,
        "feature": feature.astype(str), "kind": "llm",
        "name": np.char.add("chat ", cols["model"].astype(str)),
        **{c: pl.Series(cols[c].tolist(), dtype=pl.String) for c in
           ("provider", "model", "response_model", "prompt_name", "prompt_version",
            "retrieval_version", "release")},
        "system_prompt": pl.Series([SYSTEM_PROMPTS[f] for f in FEATURES]).gather(
            _feature_index(feature)),
        "outcome": outcome.astype(str),
        "plan": u["plan"], "locale": u["locale"], "region": u["region"],
        "tenant": u["tenant"], "client_version": u["client_version"],
        "request_language": lang.astype(str),
        "expected_format": np.where(feature == "report_json", "json", "text"),
    }).hstack(texts.drop("topic"))
    frame = frame.with_columns(
        pl.when(pl.col("outcome") == "flagged")
        .then(pl.lit(ABUSIVE[0])).otherwise(pl.col("input_text")).alias("input_text"))
    return _tokens(frame)


def _feature_index(feature: np.ndarray) -> np.ndarray:
    out = np.zeros(len(feature), dtype=np.int64)
    for i, f in enumerate(FEATURES):
        out[feature == f] = i
    return out


def _tokens(frame: pl.DataFrame) -> pl.DataFrame:
    ctx_chars = pl.col("retrievals").list.eval(pl.element().struct.field("content")
                                               .str.len_chars()).list.sum().fill_null(0)
    frame = frame.with_columns(
        ((pl.col("system_prompt").str.len_chars() + pl.col("input_text").str.len_chars()
          + ctx_chars) // 4 + 12).cast(pl.Int64).alias("input_tokens"),
        (pl.col("output_text").str.len_chars().fill_null(0) // 4 + 1).cast(pl.Int64)
        .alias("output_tokens"))
    prices = pl.DataFrame({"model": list(PRICE_PER_1K),
                           "_pin": [p[0] for p in PRICE_PER_1K.values()],
                           "_pout": [p[1] for p in PRICE_PER_1K.values()]})
    frame = frame.join(prices, on="model", how="left", maintain_order="left")
    return frame.with_columns(
        ((pl.col("input_tokens") * pl.col("_pin") + pl.col("output_tokens") * pl.col("_pout"))
         / 1000).round(6).alias("cost_usd")).drop("_pin", "_pout")


MOD_TYPE = pl.List(pl.Struct({"stage": pl.String, "category": pl.String, "flagged": pl.Boolean,
                              "score": pl.Float64, "action": pl.String}))


def _moderations(frame: pl.DataFrame, rng: np.random.Generator) -> pl.Series:
    n = frame.height
    outcome = frame["outcome"].to_numpy()
    u = rng.random(n)
    score = np.round(rng.uniform(0.6, 0.98, size=n), 3)
    low = np.round(rng.uniform(0.0, 0.2, size=n), 3)
    rows: list[Any] = [None] * n
    for i in np.flatnonzero(outcome == "flagged"):
        rows[i] = [{"stage": "input", "category": "harassment", "flagged": True,
                    "score": float(score[i]), "action": "block"}]
    for i in np.flatnonzero((outcome == "leak") & (u < 0.25)):
        rows[i] = [{"stage": "output", "category": "pii", "flagged": True,
                    "score": float(score[i]), "action": "log"}]
    for i in np.flatnonzero((outcome == "normal") & (u < 0.03)):
        rows[i] = [{"stage": "output", "category": "harassment", "flagged": False,
                    "score": float(low[i]), "action": "allow"}]
    return pl.Series("moderations", rows, dtype=MOD_TYPE)


def _tool_spans(frame: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Agent calls that used a tool get a child span for the tool execution."""
    calls = frame.filter(pl.col("tool_name").is_not_null())
    if calls.height == 0:
        return calls
    child = _hexids(_mix(np.frombuffer(bytes.fromhex("".join(calls["span_id"].to_list())),
                                       dtype=">u8").astype(np.uint64) ^ np.uint64(0xA5A5)))
    return calls.with_columns(
        pl.Series("span_id", child), pl.Series("event_id", child),
        pl.col("span_id").alias("parent_id"), pl.lit("tool").alias("kind"),
        pl.concat_str(pl.lit("execute_tool "), pl.col("tool_name")).alias("name"),
        (pl.col("_ts") + pl.col("duration_ms") / 1000).alias("_ts"),
        pl.Series("duration_ms", np.round(rng.lognormal(5.0, 0.5, size=calls.height), 1)),
        pl.lit(None, dtype=pl.String).alias("input_text"),
        pl.col("tool_output").alias("output_text"),
        pl.lit(None, dtype=pl.String).alias("finish_reason"),
        pl.lit(0, dtype=pl.Int64).alias("input_tokens"),
        pl.lit(0, dtype=pl.Int64).alias("output_tokens"), pl.lit(0.0).alias("cost_usd"),
        pl.lit(None, dtype=pl.String).alias("system_prompt"),
        pl.lit(None, dtype=RETRIEVAL_T).alias("retrievals"))


RETRIEVAL_T = pl.List(pl.Struct({"rank": pl.Int32, "doc_id": pl.String, "score": pl.Float64,
                                 "content": pl.String}))


def _finish_day(frame: pl.DataFrame, outcome: np.ndarray, planted: np.ndarray,
                served_harm: np.ndarray, feature: np.ndarray, ctx: dict[str, Any],
                rng: np.random.Generator) -> Day:
    effect: Effect = ctx["scenario"].effect
    frame = frame.with_columns(_moderations(frame, rng), pl.Series("_planted", planted),
                               pl.Series("_served", served_harm))
    llm = frame.with_columns(
        pl.when(pl.col("kind") == "llm").then(pl.lit(None, dtype=pl.String))
        .otherwise(pl.col("tool_args")).alias("tool_args"))
    tools = _tool_spans(frame, rng)
    llm = llm.with_columns(pl.lit(None, dtype=pl.String).alias("tool_name"))
    # The llm span keeps what it asked for in its output; the tool span carries the action.
    both = pl.concat([llm, tools], how="vertical").sort("_ts", maintain_order=True)
    pattern = list(effect.pattern)
    on_tool = effect.feature == "agent"
    hit = (pl.col("_served") & pl.col("outcome").is_in(pattern)
           & (pl.col("kind") == ("tool" if on_tool else "llm")))
    affected = both.filter(hit).select("event_id", "user_id", "session_id", "_ts", "_planted")
    feedback = _feedback(both.filter(pl.col("kind") == "llm"), ctx, rng)
    return Day(both, feedback, affected)


def _feedback(llm: pl.DataFrame, ctx: dict[str, Any], rng: np.random.Generator) -> pl.DataFrame:
    n = llm.height
    outcome = llm["outcome"].to_numpy()
    bad = ~np.isin(outcome, ["normal"])
    severe = np.isin(outcome, ["leak", "unauthorized", "over_refusal"])
    u = rng.random(n)
    down = u < np.where(bad, 0.12, 0.008)
    up = (~down) & (u < np.where(bad, 0.125, 0.048))
    complaint = rng.random(n) < np.where(severe, 0.06, np.where(bad, 0.02, 0.0004))
    lag_thumb = rng.exponential(1200.0, size=n)
    lag_complaint = rng.lognormal(10.5, 0.8, size=n)
    comments = np.array([COMPLAINTS.get(o, "The answer was wrong and did not help.")
                         for o in outcome], dtype=object) if complaint.any() else \
        np.full(n, None, dtype=object)
    base = llm.select("event_id", "trace_id", "user_id", "_ts")
    thumbs = base.with_columns(
        pl.Series("_fts", llm["_ts"].to_numpy() + lag_thumb), pl.lit("thumbs").alias("name"),
        pl.Series("value", np.where(down, "down", "up")),
        pl.lit(None, dtype=pl.String).alias("comment"), pl.lit("user").alias("source"),
        pl.Series("_keep", down | up)).filter(pl.col("_keep"))
    compl = base.with_columns(
        pl.Series("_fts", llm["_ts"].to_numpy() + lag_complaint),
        pl.lit("complaint").alias("name"), pl.lit("filed").alias("value"),
        pl.Series("comment", comments, dtype=pl.String), pl.lit("support_ticket").alias("source"),
        pl.Series("_keep", complaint)).filter(pl.col("_keep"))
    out = pl.concat([thumbs, compl]).drop("_keep", "_ts").sort("_fts", maintain_order=True)
    end = ctx["end_ts"]
    return out.filter(pl.col("_fts") < end)


# -- writing ------------------------------------------------------------------------------

EVENT_ORDER = ["event_id", "trace_id", "span_id", "parent_id", "ts", "duration_ms", "user_id",
               "session_id", "feature", "kind", "name", "provider", "model", "response_model",
               "prompt_name", "prompt_version", "retrieval_version", "release", "system_prompt",
               "input_text", "output_text", "finish_reason", "status", "error", "input_tokens",
               "output_tokens", "cost_usd", "tool_name", "tool_args", "plan", "locale", "region",
               "tenant", "client_version", "request_language", "expected_format",
               "policy_decision", "retrievals", "moderations"]


def _ts_text(col: str) -> pl.Expr:
    return (pl.from_epoch((pl.col(col) * 1000).round().cast(pl.Int64), time_unit="ms")
            .dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"))


def _write_events(frame: pl.DataFrame, fh: BinaryIO, fmt: str) -> None:
    out = frame.with_columns(_ts_text("_ts").alias("ts")).select(EVENT_ORDER)
    if fmt == "jsonl":
        out.write_ndjson(fh)
        return

    write_chunk(out, fh, fmt)


def _write_feedback(fb: pl.DataFrame, fh: BinaryIO) -> None:
    fb.with_columns(_ts_text("_fts").alias("ts")).select(
        "event_id", "trace_id", "user_id", "ts", "name", "value", "comment", "source",
    ).write_ndjson(fh)


def _write_changes(path: Path, harmful: Change, decoy: Change, benign: list[Change]) -> None:
    rows = [c for c in [harmful, decoy, *benign] if c.declared]
    lines = [{"change_id": c.change_id, "ts": _iso(c.start), "kind": c.kind,
              "feature": c.feature, "from": c.from_version, "to": c.to_version,
              "note": c.note, "author": "deploy-bot",
              "rollout": " -> ".join(f"{int(s * 100)}%@+{o:g}h" for o, s in c.stages)}
             for c in rows]
    assert harmful.end is not None
    lines.append({"change_id": harmful.change_id + "-RB", "ts": _iso(harmful.end),
                  "kind": harmful.kind, "feature": harmful.feature,
                  "from": harmful.to_version, "to": harmful.from_version,
                  "note": f"rollback of {harmful.change_id} (incident containment)",
                  "author": "oncall", "rollout": "100%@+0h"})
    lines.sort(key=lambda r: str(r["ts"]))
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")


def generate(outdir: str | Path, scenario: str, seed: int = 0, events: int = 200_000,
             days: int = 21, progress: Callable[[int, int], None] | None = None,
             format: str = "jsonl", compress: bool = False) -> dict[str, Any]:
    """Write a drill to ``outdir``; return a summary (counts, files, answer key path).
    ``compress`` writes the events and feedback gzip-compressed (``.gz``, reproducible:
    no time stamp in the gzip header).

    >>> generate("drills/leak", "retrieval_leak", seed=3, events=2_000, days=4)["scenario"]
    'retrieval_leak'
    """
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}",
                         hint=f"choose one of: {', '.join(SCENARIOS)}")
    if format not in FORMATS:
        raise UsageError(f"unknown drill format {format!r}", hint=f"one of {', '.join(FORMATS)}")
    if days < 3 or events < 1000:
        raise UsageError("a drill needs at least 3 days and 1,000 events",
                         hint="use --days 3 or more and --events 1000 or more")
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    scen = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    harmful, decoy, benign = _plan_changes(scen, days)
    changes = sorted([harmful, decoy, *benign], key=lambda c: c.start)
    n_users = int(np.clip(events // 25, 200, 2_000_000))
    ctx: dict[str, Any] = {
        "world": _world(rng, n_users, len(changes), seed), "scenario": scen, "seed": seed,
        "changes": changes, "harmful": harmful, "base": _base_versions(changes),
        "pools": build_pools(rng), "profile": _hour_profile(days),
        "end_ts": (START + dt.timedelta(days=days)).timestamp()}
    per_day = rng.multinomial(events, [ctx["profile"][d * 24:(d + 1) * 24].sum()
                                       for d in range(days)])
    gz = ".gz" if compress else ""
    names = {"events": ("events.jsonl" if format == "jsonl" else f"events.{format}.jsonl") + gz,
             "feedback": "feedback.jsonl" + gz, "changes": "changes.jsonl"}
    affected, rows_written, feedback_rows = [], 0, 0
    with _sink(out / names["events"]) as ev_fh, _sink(out / names["feedback"]) as fb_fh:
        for day in range(days):
            chunk = _make_day(day, int(per_day[day]), ctx, rng, int(per_day[:day].sum()))
            _write_events(chunk.frame, ev_fh, format)
            _write_feedback(chunk.feedback, fb_fh)
            affected.append(chunk.affected)
            rows_written += chunk.frame.height
            feedback_rows += chunk.feedback.height
            if progress:
                progress(int(per_day[:day + 1].sum()), events)
    _write_changes(out / "changes.jsonl", harmful, decoy, benign)
    key = _answer_key(out, scen, seed, events, days, harmful, decoy, benign,
                      pl.concat(affected), names)
    return {"scenario": scenario, "seed": seed, "format": format, "outdir": str(out),
            "requests": events, "events": rows_written, "feedback": feedback_rows,
            "files": sorted(p.name for p in out.iterdir()),
            "root_cause": key["root_cause"], "affected": key["affected"]}


@contextmanager
def _sink(path: Path) -> Iterator[BinaryIO]:
    """A binary file to stream into; gzip-compressed when ``path`` ends in ``.gz``, with
    mtime 0 and no file name in the header so the same drill gives the same bytes."""
    with open(path, "wb") as raw:
        if path.suffix != ".gz":
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
            yield cast(BinaryIO, zipped)


def _answer_key(out: Path, scen: Scenario, seed: int, events: int, days: int, harmful: Change,
                decoy: Change, benign: list[Change], affected: pl.DataFrame,
                files: dict[str, str]) -> dict[str, Any]:
    for col, fname in (("user_id", "affected_users.txt"), ("session_id", "affected_sessions.txt"),
                       ("event_id", "affected_events.txt")):
        values = affected[col].unique().sort().to_list()
        (out / fname).write_text("".join(v + "\n" for v in values), encoding="utf-8")
    assert harmful.end is not None
    planted = affected.filter(pl.col("_planted"))
    spared = []
    t = harmful.start
    while t <= harmful.end:
        after = planted.filter(pl.col("_ts") >= t.timestamp())
        before_users = set(planted.filter(pl.col("_ts") < t.timestamp())["user_id"].to_list())
        spared.append({"contained_at": _iso(t), "events": after.height,
                       "users": len(set(after["user_id"].to_list()) - before_users)})
        t += dt.timedelta(hours=6)
    effect = scen.effect
    key = {
        "scenario": scen.name, "description": scen.description, "seed": seed,
        "requests": events, "days": days, "start": _iso(START),
        "end": _iso(START + dt.timedelta(days=days)),
        "root_cause": {**harmful.record(), "note": harmful.note},
        "decoy": {**decoy.record(), "note": decoy.note},
        "benign": [c.record() for c in benign],
        "onset": _iso(harmful.start), "contained_at": _iso(harmful.end),
        "exposure_window": {"start": _iso(harmful.start), "end": _iso(harmful.end)},
        "bucket": "1h",
        "pattern": {"feature": effect.feature, "outcomes": list(effect.pattern),
                    "labels": list(effect.labels), "segment": effect.segment,
                    "topic_group": effect.topic_group, "description": effect.description,
                    "event_kind": "tool" if effect.feature == "agent" else "llm"},
        "affected": {"users": affected["user_id"].n_unique(),
                     "sessions": affected["session_id"].n_unique(),
                     "events": affected.height,
                     "definition": "events served by the root-cause version inside the "
                                   "exposure window whose output shows the pattern"},
        "caused": {"events": planted.height, "users": planted["user_id"].n_unique(),
                   "definition": "pattern events that the old version would not have "
                                 "produced (planted by the change)"},
        "spared_if_contained_at": spared,
        "effect": [{"outcome": o, "probability": p} for o, p in effect.outcomes],
        "background_rates": BACKGROUND[effect.feature],
        "files": files,
    }
    (out / "answer_key.json").write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")
    return key


def scenarios() -> dict[str, str]:
    """Scenario name -> one-line description."""
    return {name: s.description for name, s in SCENARIOS.items()}


__all__ = ["SCENARIOS", "Change", "asdict", "generate", "scenarios"]

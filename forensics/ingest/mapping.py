"""Mapping source records onto the canonical tables, in SQL.

Container readers (:mod:`forensics.ingest.readers`) turn any file into a staging table
``_stage_records(_ord, locator, j)`` of one JSON object per record. The functions here
turn those records into ``_stage_events`` / ``_stage_retrievals`` / ``_stage_moderations``,
``_stage_changes`` or ``_stage_feedback`` with one set-based statement each.

A mapping names, for a canonical column, the source field that holds it, as a dotted
path (``request.user.id``) or a JSONPath (``$.request.user.id``). Without a mapping the
canonical names and a few common aliases are used.

>>> parse_mapping({"user_id": "request.user.id"})["user_id"]
'$."request"."user"."id"'
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from forensics.core.errors import MappingError
from forensics.ingest.readers import CleanJsonl

EVENT_TEXT = [
    "event_id", "trace_id", "span_id", "parent_id", "user_id", "session_id", "feature",
    "kind", "name", "provider", "model", "response_model", "prompt_name", "prompt_version",
    "retrieval_version", "release", "system_prompt", "input_text", "output_text",
    "finish_reason", "status", "error", "tool_name", "tool_args",
]
EVENT_NUMERIC = {"duration_ms": "DOUBLE", "input_tokens": "BIGINT", "output_tokens": "BIGINT",
                 "cost_usd": "DOUBLE"}
NESTED = ["retrievals", "moderations"]
# Beyond this many distinct top-level keys in a file, records are not parsed into one
# struct field per key (DuckDB would build a struct as wide as the file's key set).
WIDE_KEYS = 2000

FEEDBACK_TEXT = ["event_id", "trace_id", "user_id", "name", "value", "comment", "source"]
CHANGE_TEXT = ["change_id", "kind", "feature", "from_version", "to_version", "note"]

# Common spellings in the wild, tried after the canonical name itself.
ALIASES: dict[str, list[str]] = {
    "event_id": ["id", "request_id", "span_id", "run_id", "eventId", "requestId"],
    "trace_id": ["traceId", "trace"],
    "span_id": ["spanId"],
    "parent_id": ["parent_span_id", "parentSpanId", "parent_run_id", "parentId"],
    "ts": ["timestamp", "time", "created_at", "start_time", "startTime", "@timestamp",
           "datetime", "date"],
    "duration_ms": ["latency_ms", "duration", "latencyMs", "elapsed_ms"],
    "user_id": ["user", "userId", "end_user", "customer_id", "account_id"],
    "session_id": ["session", "sessionId", "conversation_id", "thread_id"],
    "feature": ["app", "application", "use_case", "endpoint", "service"],
    "kind": ["span_kind", "type", "run_type", "event_type"],
    "provider": ["vendor", "llm_provider", "gen_ai_system"],
    "model": ["model_name", "requested_model", "engine"],
    "response_model": ["model_version", "resolved_model"],
    "prompt_name": ["prompt", "prompt_id", "template"],
    "prompt_version": ["prompt_rev", "template_version"],
    "retrieval_version": ["index_version", "retriever_version", "index"],
    "release": ["app_version", "deploy", "build", "version"],
    "system_prompt": ["system", "system_message", "instructions"],
    "input_text": ["input", "prompt_text", "question", "query", "request_text", "user_message"],
    "output_text": ["output", "completion", "response", "answer", "response_text"],
    "finish_reason": ["stop_reason", "finishReason"],
    "status": ["status_code", "outcome", "level"],
    "error": ["error_message", "exception", "err"],
    "input_tokens": ["prompt_tokens", "tokens_in", "inputTokens"],
    "output_tokens": ["completion_tokens", "tokens_out", "outputTokens"],
    "cost_usd": ["cost", "spend", "price_usd", "total_cost"],
    "tool_name": ["tool", "function_name"],
    "tool_args": ["tool_arguments", "arguments", "function_arguments"],
    "retrievals": ["retrieved_documents", "documents", "contexts", "retrieval"],
    "moderations": ["moderation", "guardrails", "guardrail"],
    "comment": ["text", "feedback_text", "message"],
    "value": ["score", "rating", "thumbs", "verdict"],
    "name": ["feedback_name", "key", "metric"],
    "from_version": ["from", "old_version", "previous"],
    "to_version": ["to", "new_version", "version"],
    "note": ["description", "message", "comment", "summary"],
    "source": ["origin", "reviewer", "channel"],
}

_SEGMENT = re.compile(r"[^.\[\]]+|\[\d+\]")


def to_jsonpath(path: str) -> str:
    """``a.b[0].c`` -> ``$."a"."b"[0]."c"``; a path starting with ``$`` is kept."""
    path = path.strip()
    if not path:
        raise MappingError("empty source path in mapping")
    if path.startswith("$"):
        return path
    parts = []
    for seg in _SEGMENT.findall(path):
        if seg.startswith("["):
            parts.append(seg)
        else:
            parts.append('."' + seg.replace('"', '\\"') + '"')
    return "$" + "".join(parts)


def parse_mapping(mapping: dict[str, Any] | str | Path | None) -> dict[str, str]:
    """A mapping from a dict or a TOML file (a ``[mapping]`` table or top-level keys)."""
    if mapping is None:
        return {}
    if isinstance(mapping, (str, Path)):
        path = Path(mapping)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise MappingError(f"cannot read mapping file {path}: {exc}") from exc
        mapping = data.get("mapping", data)
    if not isinstance(mapping, dict):
        raise MappingError(f"a mapping must be a table of column = path, got {type(mapping)}")
    out = {}
    for column, source in mapping.items():
        if not isinstance(source, str):
            raise MappingError(f"mapping for {column!r} must be a string path, got {source!r}")
        out[str(column)] = to_jsonpath(source)
    return out


def sample_keys(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> set[str]:
    """Top-level keys of the staged records (all of them unless ``limit`` is given):
    a key that only appears late in a file (``error`` on failures) must still be mapped."""
    source = "_stage_records" if limit is None else \
        f"(SELECT j FROM _stage_records ORDER BY _ord LIMIT {int(limit)})"
    rows = con.execute(f"SELECT DISTINCT unnest(json_keys(j)) FROM {source}").fetchall()
    return {r[0] for r in rows}


def key_sets(con: duckdb.DuckDBPyConnection) -> list[tuple[int, list[str]]]:
    """(records, keys) for each distinct key list of the staged records: what the file
    holds is decided from all of them (one grouping pass; few groups, whatever the size)."""
    rows = con.execute("SELECT count(*), any_value(k) FROM (SELECT json_keys(j) AS k "
                       "FROM _stage_records) GROUP BY hash(k)").fetchall()
    return [(int(n), list(k or [])) for n, k in rows]


def readable(resolved: dict[str, list[str]]) -> dict[str, str]:
    """The mapping a load chose, column -> source field(s), as a person writes them.

    >>> readable({"prompt_name": ['$."prompt"'], "user_id": ['$."user"', '$."userId"']})
    {'prompt_name': 'prompt', 'user_id': 'user | userId'}
    """
    def one(path: str) -> str:
        segs = re.findall(r'\."((?:[^"\\]|\\.)*)"|\.([A-Za-z_][\w-]*)|(\[\d+\])', path)
        if not segs:
            return path
        out = ""
        for quoted, bare, index in segs:
            out += index if index else ("." if out else "") + (quoted or bare)
        return out

    return {column: " | ".join(one(p) for p in paths) for column, paths in resolved.items()}


def resolve(columns: Iterable[str], explicit: dict[str, str],
            keys: set[str]) -> dict[str, list[str]]:
    """JSONPaths for each canonical column, in priority order: the explicit mapping alone
    when given, else the canonical name and its aliases among the keys the file has
    (several spellings in one file are coalesced)."""
    chosen: dict[str, list[str]] = {}
    taken = set(explicit.values())
    for column in columns:
        if column in explicit:
            chosen[column] = [explicit[column]]
            continue
        # A key named like the column is always its own source, even when another
        # column took it as a fallback alias (event_id falls back to span_id).
        own = [to_jsonpath(column)] if column in keys else []
        paths = own + [to_jsonpath(c) for c in ALIASES.get(column, [])
                       if c in keys and to_jsonpath(c) not in taken]
        if paths:
            chosen[column] = paths
            taken.update(paths)
    return chosen


def check_columns(explicit: dict[str, str], allowed: Iterable[str], table: str) -> None:
    unknown = set(explicit) - set(allowed)
    if unknown:
        raise MappingError(f"mapping names columns that {table} does not have: "
                           f"{sorted(unknown)}", hint=f"{table} columns: {', '.join(allowed)}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def removal_patch(paths: Iterable[str]) -> str:
    """A JSON merge patch that deletes the mapped fields, so attributes keep the rest."""
    tree: dict[str, Any] = {}
    for path in paths:
        segs = re.findall(r'\."((?:[^"\\]|\\.)*)"|\.([A-Za-z_][\w]*)|(\[\d+\])', path)
        names = [a or b for a, b, c in segs if not c]
        if not names or any(c for _, _, c in segs):
            continue  # array paths stay in attributes as they are
        node = tree
        for name in names[:-1]:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[names[-1]] = None
    import json

    return json.dumps(tree)


def _text_expr(paths: str | list[str]) -> str:
    if isinstance(paths, str):
        paths = [paths]
    exprs = [f"json_extract_string(j, {_literal(p)})" for p in paths]
    return exprs[0] if len(exprs) == 1 else "coalesce(" + ", ".join(exprs) + ")"


TS_MACRO = r"""
CREATE OR REPLACE TEMP MACRO _fx_epoch(d) AS CASE
    WHEN NOT isfinite(d) THEN NULL
    WHEN abs(d) < 1e11 THEN make_timestamp(try_cast(d * 1e6 AS BIGINT))
    WHEN abs(d) < 1e14 THEN make_timestamp(try_cast(d * 1e3 AS BIGINT))
    WHEN abs(d) < 1e17 THEN make_timestamp(try_cast(d AS BIGINT))
    WHEN abs(d) < 9e21 THEN make_timestamp(try_cast(d / 1e3 AS BIGINT)) END;
CREATE OR REPLACE TEMP MACRO _fx_ts(s) AS CASE
    WHEN s IS NULL OR trim(s) = '' THEN NULL
    WHEN s[1] NOT IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
         OR NOT regexp_full_match(trim(s), '-?[0-9]+(\.[0-9]+)?') THEN coalesce(
        try_cast(s AS TIMESTAMPTZ)::TIMESTAMP,
        try_strptime(s, ['%a, %d %b %Y %H:%M:%S GMT', '%d/%b/%Y:%H:%M:%S %z',
                         '%Y/%m/%d %H:%M:%S', '%m/%d/%Y %H:%M:%S'])::TIMESTAMP)
    ELSE _fx_epoch(try_cast(s AS DOUBLE))  -- epoch s / ms / us / ns by magnitude
END
"""


def install_macros(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(TS_MACRO)


def _typed(column: str, sql_type: str, raw: str | None) -> tuple[str, str]:
    """(value expression, reject-reason expression) for a numeric column whose source
    text is the SQL expression ``raw``. A value that is not a finite number, does not fit
    the column (1e30 tokens), or is negative is refused for that record alone."""
    if raw is None:
        return f"NULL::{sql_type} AS {column}", "NULL"
    num = f"try_cast({raw} AS DOUBLE)"
    value = (f"CASE WHEN isfinite({num}) AND {num} >= 0 THEN try_cast({num} AS {sql_type}) "
             "END")
    if sql_type == "BIGINT":  # 12.0 is an integer; 12.5 is not
        value = (f"CASE WHEN regexp_full_match(trim({raw}), '-?[0-9]+') "
                 f"THEN try_cast({raw} AS BIGINT) WHEN isfinite({num}) AND {num} = "
                 f"round({num}) THEN try_cast({num} AS BIGINT) END")
    reason = (f"CASE WHEN {raw} IS NULL THEN NULL "
              f"WHEN {num} IS NULL THEN '{column}: expected a number, got ' || left({raw}, 60) "
              f"WHEN NOT isfinite({num}) THEN '{column}: not a finite number: ' || left({raw}, 60) "
              f"WHEN {num} < 0 THEN '{column}: negative: ' || left({raw}, 60) "
              f"WHEN {value} IS NULL THEN '{column}: not a whole number in range: ' "
              f"|| left({raw}, 60) END")
    return f"CASE WHEN {num} >= 0 THEN {value} END AS {column}", reason


def stage_events(con: duckdb.DuckDBPyConnection, mapping: dict[str, str],
                 clean: CleanJsonl | None = None) -> dict[str, list[str]]:
    """``_stage_records`` -> ``_stage_events`` (+ retrievals, moderations). Returns the
    resolved mapping so the evidence row can record it.

    Each record is parsed once into a struct with one field per top-level key: canonical
    sources as text, everything else as JSON for ``attributes``; by ``from_json`` over
    ``_stage_records``, or, for a ``clean`` JSON Lines file, by DuckDB's own reader.
    """
    columns = [*EVENT_TEXT, "ts", *EVENT_NUMERIC, *NESTED]
    check_columns(mapping, columns, "events")
    keys = set(clean.keys) if clean else sample_keys(con)
    resolved = resolve(columns, mapping, keys)
    plan = _Plan(resolved, keys)
    parsed = clean.parsed(plan.struct()) if clean and not plan.special and not plan.wide \
        else (f"SELECT _ord, locator, j, from_json(j, {_literal(plan.struct())}) AS s "
              "FROM _stage_records")
    text = {c: plan.text(c) for c in [*EVENT_TEXT, "ts", *EVENT_NUMERIC]}
    typed, reasons = [], []
    for column, sql_type in EVENT_NUMERIC.items():
        expr, reason = _typed(column, sql_type, f"_n_{column}" if text[column] else None)
        typed.append(expr)
        reasons.append(reason)
    nested = ", ".join(f"{plan.json(n)} AS _nest_{n}" for n in NESTED)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_events AS
        WITH p AS ({parsed}),
        q AS (SELECT _ord, locator,
                     {', '.join(f"{text[c] or 'NULL::VARCHAR'} AS {c}" for c in EVENT_TEXT)},
                     {', '.join(f"{text[c] or 'NULL::VARCHAR'} AS _n_{c}" for c in EVENT_NUMERIC)},
                     {text['ts'] or 'NULL::VARCHAR'} AS _ts_raw,
                     {plan.attributes()} AS attributes, {nested}
              FROM p)
        SELECT _ord, locator, {', '.join(EVENT_TEXT)}, {', '.join(typed)}, _ts_raw,
               _fx_ts(_ts_raw) AS ts, attributes,
               coalesce({', '.join(reasons)}) AS _reject, NULL::VARCHAR AS _raw,
               {', '.join(f"_nest_{n}" for n in NESTED)}
        FROM q
    """)
    _stage_nested(con)
    return resolved


_TOP = re.compile(r'^\$\.(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][\w-]*))(.*)$')


def _split(path: str) -> tuple[str, str]:
    """``$."a"."b"[0]`` -> (``a``, ``$."b"[0]``); rest is ``$`` for a top-level key."""
    match = _TOP.match(path)
    if not match:
        raise MappingError(f"unsupported path {path!r}: it must start with a field name",
                           hint="use a path like 'request.user.id' or '$.request.user.id'")
    top = (match.group(1) or match.group(2)).replace('\\"', '"')
    return top, "$" + match.group(3)


def _ident(key: str) -> str:
    return 's."' + key.replace('"', '""') + '"'


class _Plan:
    """Which top-level keys feed canonical columns (read as text), which feed nested
    tables, and which stay in ``attributes`` (read as JSON)."""

    def __init__(self, resolved: dict[str, list[str]], keys: set[str]) -> None:
        self.sources = {c: [_split(p) for p in paths] for c, paths in resolved.items()}
        scalar_cols = [c for c in self.sources if c not in NESTED]
        self.scalar_keys = {top for c in scalar_cols for top, rest in self.sources[c]
                            if rest == "$"}
        self.parents: dict[str, list[str]] = {}
        for c in scalar_cols:
            for top, rest in self.sources[c]:
                if rest != "$":
                    self.parents.setdefault(top, []).append(rest)
        self.nested_keys = {top for n in NESTED for top, _ in self.sources.get(n, [])}
        # Wide records (thousands of distinct keys) are not parsed into a struct of one
        # field per key, which would hold every record's every key in memory: only the
        # mapped keys are, and attributes are the record minus them.
        self.wide = len(keys) > WIDE_KEYS
        mapped = self.scalar_keys | set(self.parents) | self.nested_keys
        self.resolved = resolved
        wanted = sorted(mapped if self.wide else keys | mapped)
        # Struct fields cannot be empty or differ only in case: such keys stay in
        # attributes through a (rare) second pass over the record.
        seen: set[str] = set()
        self.keys: list[str] = []
        self.special: list[str] = []
        for key in wanted:
            (self.special if not key or key.lower() in seen else self.keys).append(key)
            seen.add(key.lower())
        self.scalar_keys -= set(self.parents)  # a parent is read as JSON, then extracted

    def struct(self) -> str:
        import json

        fields = {k: "VARCHAR" if k in self.scalar_keys else "JSON" for k in self.keys}
        return json.dumps(fields or {"__none__": "JSON"})  # from_json needs a field

    def text(self, column: str) -> str | None:
        parts = []
        for top, rest in self.sources.get(column, []):
            if top in self.special:
                path = '$."' + top.replace('"', '\\"') + '"' + rest[1:]
                parts.append(f"json_extract_string(j, {_literal(path)})")
            elif rest == "$" and top in self.scalar_keys:
                parts.append(_ident(top))
            else:
                parts.append(f"json_extract_string({_ident(top)}, {_literal(rest)})")
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"

    def json(self, column: str) -> str:
        parts = [_ident(top) if rest == "$" else f"json_extract({_ident(top)}, {_literal(rest)})"
                 for top, rest in self.sources.get(column, [])]
        return parts[0] if parts else "NULL::JSON"

    def attributes(self) -> str:
        if self.wide:
            drop = removal_patch(p for c, paths in self.resolved.items() for p in paths)
            return f"json_merge_patch(j::JSON, {_literal(drop)})"
        members = []
        for key in self.keys:
            if key in self.scalar_keys or key in self.nested_keys:
                continue
            value = _ident(key)
            if key in self.parents:
                patch = removal_patch("$" + rest[1:] if rest.startswith("$") else rest
                                      for rest in self.parents[key])
                value = f"json_merge_patch({value}, {_literal(patch)})"
            members.append(f"{_literal(key)}, {value}")
        result = ("json_merge_patch('{}', json_object(" + ", ".join(members) + "))"
                  if members else "'{}'::JSON")
        if self.special:
            import json

            drop = json.dumps(dict.fromkeys(self.keys))
            result = f"json_merge_patch({result}, json_merge_patch(j, {_literal(drop)}))"
        return result


def _stage_nested(con: duckdb.DuckDBPyConnection) -> None:
    """Nested retrieved documents and moderation results, one row per element."""
    for name in NESTED:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _stage_{name}_src AS
            SELECT _ord, generate_subscripts(arr, 1) AS _pos, unnest(arr) AS e FROM (
                SELECT _ord, CASE json_type(_nest_{name})
                    WHEN 'ARRAY' THEN json_extract(_nest_{name}, '$[*]')
                    WHEN 'OBJECT' THEN [_nest_{name}] END AS arr
                FROM _stage_events WHERE _nest_{name} IS NOT NULL)
            WHERE arr IS NOT NULL
        """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _stage_retrievals AS
        SELECT _ord,
            coalesce(try_cast(json_extract_string(e, '$.rank') AS INTEGER),
                     try_cast(json_extract_string(e, '$.position') AS INTEGER), _pos) AS rank,
            coalesce(json_extract_string(e, '$.doc_id'), json_extract_string(e, '$.id'),
                     json_extract_string(e, '$.document_id'),
                     json_extract_string(e, '$.source')) AS doc_id,
            try_cast(coalesce(json_extract_string(e, '$.score'),
                              json_extract_string(e, '$.relevance')) AS DOUBLE) AS score,
            CASE WHEN json_type(e) = 'VARCHAR' THEN json_extract_string(e, '$')
                 ELSE coalesce(json_extract_string(e, '$.content'),
                               json_extract_string(e, '$.text'),
                               json_extract_string(e, '$.page_content')) END AS content
        FROM _stage_retrievals_src
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _stage_moderations AS
        SELECT _ord,
            coalesce(json_extract_string(e, '$.stage'), 'output') AS stage,
            coalesce(json_extract_string(e, '$.category'),
                     json_extract_string(e, '$.name')) AS category,
            coalesce(try_cast(json_extract_string(e, '$.flagged') AS BOOLEAN),
                     json_extract_string(e, '$.action') IN ('block', 'flag', 'blocked')) AS flagged,
            try_cast(json_extract_string(e, '$.score') AS DOUBLE) AS score,
            json_extract_string(e, '$.action') AS action
        FROM _stage_moderations_src
    """)


def stage_changes(con: duckdb.DuckDBPyConnection,
                  mapping: dict[str, str]) -> dict[str, list[str]]:
    """``_stage_records`` -> ``_stage_changes`` for a declared change log."""
    check_columns(mapping, [*CHANGE_TEXT, "ts"], "changes")
    resolved = resolve([*CHANGE_TEXT, "ts"], mapping, sample_keys(con))
    selects = [f"{_text_expr(resolved[c])} AS {c}" if c in resolved else f"NULL::VARCHAR AS {c}"
               for c in CHANGE_TEXT]
    ts_raw = _text_expr(resolved["ts"]) if "ts" in resolved else "NULL::VARCHAR"
    patch = removal_patch(p for paths in resolved.values() for p in paths)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_changes AS
        SELECT _ord, locator, {', '.join(selects)}, 'declared' AS source,
               {ts_raw} AS _ts_raw, _fx_ts({ts_raw}) AS ts,
               json_merge_patch(j, {_literal(patch)}) AS attributes,
               CASE WHEN json_type(j) <> 'OBJECT' THEN 'record is not a JSON object'
                    WHEN {_text_expr(resolved['to_version']) if 'to_version' in resolved
                          else 'NULL'} IS NULL THEN 'change has no to_version' END AS _reject,
               j AS _raw
        FROM _stage_records
    """)
    return resolved


NEGATIVE_WORDS = ("'down', 'thumbs_down', 'thumbsdown', '-1', 'negative', 'bad', 'false', "
                  "'no', 'incorrect', 'wrong', 'unhelpful', 'harmful', 'fail', 'failed'")


def stage_feedback(con: duckdb.DuckDBPyConnection,
                   mapping: dict[str, str]) -> dict[str, list[str]]:
    """``_stage_records`` -> ``_stage_feedback``: thumbs, ratings, complaints, verdicts."""
    check_columns(mapping, [*FEEDBACK_TEXT, "ts"], "feedback")
    resolved = resolve([*FEEDBACK_TEXT, "ts"], mapping, sample_keys(con))
    selects = [f"{_text_expr(resolved[c])} AS {c}" if c in resolved else f"NULL::VARCHAR AS {c}"
               for c in FEEDBACK_TEXT]
    ts_raw = _text_expr(resolved["ts"]) if "ts" in resolved else "NULL::VARCHAR"
    patch = removal_patch(p for paths in resolved.values() for p in paths)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_feedback AS
        WITH f AS (
            SELECT _ord, locator, {', '.join(selects)}, {ts_raw} AS _ts_raw,
                   _fx_ts({ts_raw}) AS ts, json_merge_patch(j, {_literal(patch)}) AS attributes,
                   CASE WHEN json_type(j) <> 'OBJECT' THEN 'record is not a JSON object'
                        END AS _reject, j AS _raw
            FROM _stage_records)
        SELECT *,
            CASE lower(value) WHEN 'up' THEN 1 WHEN 'thumbs_up' THEN 1 WHEN 'positive' THEN 1
                 WHEN 'down' THEN 0 WHEN 'thumbs_down' THEN 0 WHEN 'negative' THEN 0
                 WHEN 'true' THEN 1 WHEN 'false' THEN 0
                 ELSE try_cast(value AS DOUBLE) END AS score,
            lower(coalesce(name, '')) IN ('complaint', 'report', 'escalation', 'flag')
            OR lower(coalesce(value, '')) IN ({NEGATIVE_WORDS})
            OR (lower(coalesce(name, '')) IN ('rating', 'stars', 'csat')
                AND try_cast(value AS DOUBLE) <= 2) AS negative
        FROM f
    """)
    if "event_id" not in resolved and "trace_id" not in resolved and "user_id" not in resolved:
        raise MappingError("feedback needs at least one of event_id, trace_id or user_id",
                           hint="map one with mapping={'event_id': 'path.to.id'}")
    return resolved

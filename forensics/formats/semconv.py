"""Spans -> canonical events, whatever convention their attributes follow.

Every span reader (OTLP, Phoenix / OpenInference, SDK span dumps, Langfuse metadata)
first builds ``_spans``, one row per span:

    _ord, locator, trace_id, span_id, parent_id, name, _ts_raw, ts, end_ts,
    kind_hint (a span kind the envelope states: Phoenix span_kind, Langfuse type),
    status_code (ok / error / unset / NULL), status_message,
    a MAP(VARCHAR, JSON)  the span's attributes, flat dotted keys,
    r MAP(VARCHAR, JSON)  its resource's attributes,
    ev JSON[]             span events and joined log records: {name, time, attributes, body},
    extra JSON            envelope fields with no canonical column (kept in attributes),
    _reject, _raw

and :func:`stage_spans` reads the canonical columns out of the attributes in one
set-based statement. The attribute names of every GenAI semantic-conventions version in
the wild are understood (``gen_ai.input.messages`` / ``gen_ai.prompt`` JSON strings,
``gen_ai.content.prompt`` span events, ``gen_ai.user.message`` / ``gen_ai.choice`` log
events, ``gen_ai.system`` and ``gen_ai.provider.name``, ``prompt_tokens`` and
``input_tokens``), as are OpenInference (``llm.input_messages.N.message.*``,
``retrieval.documents.N.document.*``, ``llm.prompt_template.version``), the Vercel AI SDK
(``ai.*``), Traceloop / OpenLLMetry (``gen_ai.prompt.N.content``) and Langfuse's own OTel
attributes. An attribute lands in a canonical column, or stays in ``attributes``: it is
dropped from ``attributes`` only when the column holds exactly its value.

>>> stage_spans(con)   # doctest: +SKIP
"""

from __future__ import annotations

import duckdb

from .common import literal, typed

# canonical column -> attribute keys, first present wins
TEXT_KEYS: dict[str, list[str]] = {
    "provider": ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system",
                 "ai.model.provider", "langsmith.metadata.ls_provider", "litellm.provider"],
    "model": ["gen_ai.request.model", "ai.model.id", "llm.model_name", "embedding.model_name",
              "llm.request.model", "langfuse.observation.model.name",
              "langsmith.metadata.ls_model_name"],
    "response_model": ["gen_ai.response.model", "ai.response.model", "llm.model_name",
                       "llm.response.model", "langfuse.observation.model.name"],
    "user_id": ["user.id", "enduser.id", "gen_ai.user.id", "langfuse.user.id",
                "ai.telemetry.metadata.userId", "langsmith.metadata.user_id", "user_id"],
    "session_id": ["session.id", "gen_ai.conversation.id", "langfuse.session.id",
                   "ai.telemetry.metadata.sessionId", "langsmith.metadata.thread_id",
                   "langsmith.metadata.session_id", "langsmith.metadata.conversation_id",
                   "session_id"],
    "feature": ["feature", "app.feature", "ai.telemetry.functionId", "traceloop.workflow.name",
                "langfuse.trace.name"],
    "prompt_name": ["gen_ai.prompt.name", "langfuse.observation.prompt.name",
                    "traceloop.prompt.key", "prompt.name", "prompt_name"],
    "prompt_version": ["gen_ai.prompt.version", "llm.prompt_template.version",
                       "langfuse.observation.prompt.version", "traceloop.prompt.version",
                       "prompt.version", "prompt_version"],
    "retrieval_version": ["retrieval.version", "retrieval_version", "gen_ai.data_source.id"],
    "release": ["service.version", "langfuse.release", "langsmith.metadata.revision_id",
                "release"],
}
RESOURCE_KEYS = {"feature": "service.name", "release": "service.version"}
NUMBER_KEYS: dict[str, list[str]] = {
    "input_tokens": ["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                     "llm.token_count.prompt", "ai.usage.inputTokens", "ai.usage.promptTokens",
                     "llm.usage.prompt_tokens"],
    "output_tokens": ["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion", "ai.usage.outputTokens",
                      "ai.usage.completionTokens", "llm.usage.completion_tokens"],
    "cost_usd": ["gen_ai.usage.cost", "llm.cost.total", "gen_ai.cost.total", "cost_usd"],
}
NUMBER_TYPES = {"input_tokens": "BIGINT", "output_tokens": "BIGINT", "cost_usd": "DOUBLE"}
TOOL_NAME_KEYS = ["gen_ai.tool.name", "tool.name", "ai.toolCall.name"]
TOOL_ARGS_KEYS = ["gen_ai.tool.call.arguments", "ai.toolCall.args", "tool_call.function.arguments"]
TOOL_RESULT_KEYS = ["gen_ai.tool.call.result", "ai.toolCall.result"]
KIND_KEYS = ["openinference.span.kind", "langfuse.observation.type", "langsmith.span.kind",
             "gen_ai.operation.name",
             "traceloop.span.kind", "llm.request.type"]
# Request / response payloads as the record readers (Langfuse, LangSmith, OpenAI logs,
# LiteLLM) hand them over: whole bodies whose messages, model and usage are read below.
REQ_KEYS = ["langfuse.observation.input", "ai.prompt", "langsmith.inputs", "openai.request",
            "litellm.messages"]
RESP_KEYS = ["langfuse.observation.output", "langsmith.outputs", "openai.response",
             "litellm.response"]
IN_KEYS = ["gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages", "ai.prompt.messages",
           *REQ_KEYS]
OUT_KEYS = ["gen_ai.output.messages", "gen_ai.completion", "llm.output_messages", *RESP_KEYS]
FINISH_KEYS = ["gen_ai.response.finish_reasons", "ai.response.finishReason",
               "llm.response.finish_reason"]
MESSAGE_EVENTS = ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
                  "gen_ai.tool.message")
MODERATION_FIELDS = ("stage", "category", "flagged", "score", "action")


def _a(key: str, src: str = "a") -> str:
    return f"{src}[{literal(key)}]"


def _first(keys: list[str], src: str = "a") -> str:
    parts = [f"_fx_str({_a(k, src)})" for k in keys]
    return parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"


def _layer1() -> str:
    """Per span: flattened-message entries, event-carried content, and the kind."""
    ev_attr = ("json_extract(list_filter(ev, lambda e: (e ->> 'name') = {name})[1], "
               "'$.attributes.\"{key}\"')")
    details = ("json_extract(list_filter(ev, lambda e: (e ->> 'name') = "
               "'gen_ai.client.inference.operation.details')[1], 'attributes')")
    events = ", ".join(literal(n) for n in MESSAGE_EVENTS)
    vercel = ("CASE WHEN a['ai.operationId'] IS NULL THEN NULL "
              "WHEN _fx_str(a['ai.operationId']) = 'ai.toolCall' THEN 'tool' "
              "WHEN regexp_matches(_fx_str(a['ai.operationId']), '^ai\\.embed.*\\.do') "
              "THEN 'embedding' "
              "WHEN regexp_matches(_fx_str(a['ai.operationId']), '\\.do[A-Z]') THEN 'llm' "
              "ELSE 'chain' END")
    has_model = ("CASE WHEN " + " OR ".join(f"a[{literal(k)}] IS NOT NULL"
                                            for k in ["gen_ai.request.model", "llm.model_name",
                                                      "gen_ai.response.model"])
                 + " THEN 'llm' END")
    return f"""
        SELECT *,
            _fx_kind(coalesce(kind_hint, {_first(KIND_KEYS)}, {vercel}, {has_model},
                              CASE WHEN ({_first(TOOL_NAME_KEYS)}) IS NOT NULL THEN 'tool' END,
                              'span')) AS kind,
            _fx_flat_entries(a, 'llm.input_messages') AS _oi_in,
            _fx_flat_entries(a, 'llm.output_messages') AS _oi_out,
            _fx_flat_entries(a, 'gen_ai.prompt') AS _tl_in,
            _fx_flat_entries(a, 'gen_ai.completion') AS _tl_out,
            _fx_flat_entries(a, 'retrieval.documents') AS _docs_flat,
            {ev_attr.format(name="'gen_ai.content.prompt'", key="gen_ai.prompt")} AS _ev_prompt,
            {ev_attr.format(name="'gen_ai.content.completion'", key="gen_ai.completion")}
                AS _ev_completion,
            {details} AS _details,
            list_transform(list_filter(ev, lambda e: (e ->> 'name') IN ({events})),
                lambda e: json_merge_patch(CASE WHEN json_type(json_extract(e, 'body')) = 'OBJECT'
                    THEN json_extract(e, 'body') ELSE json_object('content', json_extract(e, 'body')) END,
                    json_object('role', coalesce(e ->> '$.body.role',
                        regexp_extract(e ->> 'name', 'gen_ai\\.(.*)\\.message', 1))))) AS _ev_in,
            list_transform(list_filter(ev, lambda e: (e ->> 'name') = 'gen_ai.choice'),
                lambda e: json_extract(e, 'body')) AS _ev_choice
        FROM _spans
    """


def _layer2() -> str:
    """Message lists (JSON[]) from whichever convention carries them, and the request /
    response payloads they came from."""
    details = "json_extract(_details, '$.\"gen_ai.{}.messages\"')"
    ins = ", ".join(f"_fx_msgs_in(a[{literal(k)}])" for k in IN_KEYS[:2])
    more_in = ", ".join(f"_fx_msgs_in(a[{literal(k)}])" for k in IN_KEYS[2:])
    outs = ", ".join(f"_fx_msgs_out(a[{literal(k)}])" for k in OUT_KEYS[:2])
    more_out = ", ".join(f"_fx_msgs_out(a[{literal(k)}])" for k in OUT_KEYS[2:])
    req = ", ".join(f"a[{literal(k)}]" for k in REQ_KEYS)
    resp = ", ".join(f"a[{literal(k)}]" for k in RESP_KEYS)
    return f"""
        SELECT *,
            coalesce({ins}, _fx_msgs_in({details.format('input')}), _fx_msgs_in(_ev_prompt),
                     CASE WHEN len(_ev_in) > 0 THEN _ev_in END,
                     _fx_flat_msgs(_oi_in), _fx_flat_msgs(_tl_in), {more_in}) AS _im,
            coalesce({outs}, _fx_msgs_out({details.format('output')}),
                     _fx_msgs_out(_ev_completion),
                     CASE WHEN len(_ev_choice) > 0 THEN _ev_choice END,
                     _fx_flat_msgs(_oi_out), _fx_flat_msgs(_tl_out), {more_out}) AS _om,
            _fx_unq(coalesce(a['gen_ai.system_instructions'],
                             json_extract(_details, '$."gen_ai.system_instructions"'))) AS _si,
            _fx_unq(coalesce({req})) AS _req,
            _fx_unq(coalesce({resp})) AS _resp
        FROM _sx1
    """


def _layer3() -> str:
    """The canonical columns."""
    cols = {c: _first(keys) for c, keys in TEXT_KEYS.items()}
    for col, key in RESOURCE_KEYS.items():
        cols[col] = f"coalesce({cols[col]}, _fx_str(r[{literal(key)}]))"
    cols["model"] = (f"coalesce(_fx_str(a['gen_ai.request.model']), "
                     f"_fx_unq(a['llm.invocation_parameters']) ->> 'model', "
                     f"{_first(TEXT_KEYS['model'][1:])}, "
                     f"CASE WHEN json_type(_req, '$.model') = 'VARCHAR' THEN _req ->> 'model' END)")
    cols["response_model"] = (f"coalesce({cols['response_model']}, CASE WHEN "
                              f"json_type(_resp, '$.model') = 'VARCHAR' THEN _resp ->> 'model' END)")
    cols["user_id"] = (f"coalesce({cols['user_id']}, CASE WHEN json_type(_req, '$.user') = "
                       f"'VARCHAR' THEN nullif(_req ->> 'user', '') END)")
    finish = ("coalesce(CASE json_type(a['gen_ai.response.finish_reasons']) "
              "WHEN 'ARRAY' THEN a['gen_ai.response.finish_reasons'] ->> 0 "
              "ELSE _fx_str(a['gen_ai.response.finish_reasons']) END, "
              f"{_first(FINISH_KEYS[1:])}, _om[1] ->> 'finish_reason', "
              "_om[1] ->> '$.\"message.finish_reason\"', _om[1] ->> 'stop_reason', "
              "_resp ->> 'stop_reason', _resp ->> '$.incomplete_details.reason')")
    si_text = ("CASE json_type(_si) WHEN 'ARRAY' THEN _fx_ptext(json_extract(_si, '$[*]')) "
               "WHEN 'OBJECT' THEN _fx_mtext(_si) ELSE _fx_str(_si) END")
    tool_kind = "kind = 'tool'"
    numbers = {c: _first(keys) for c, keys in NUMBER_KEYS.items()}
    usage = {"input_tokens": ["input", "prompt_tokens", "input_tokens", "promptTokens"],
             "output_tokens": ["output", "completion_tokens", "output_tokens",
                               "completionTokens"]}
    holders = ["_fx_unq(a['langfuse.observation.usage_details'])",
               "json_extract(_resp, '$.usage')", "json_extract(_resp, '$.usage_metadata')",
               "json_extract(_resp, '$.llm_output.token_usage')"]
    for col, names in usage.items():
        numbers[col] = (f"coalesce({numbers[col]}, "
                        + ", ".join(f"json_extract_string({h}, '$.{n}')"
                                    for h in holders for n in names) + ")")
    numbers["cost_usd"] = (f"coalesce({numbers['cost_usd']}, "
                           "_fx_unq(a['langfuse.observation.cost_details']) ->> 'total')")
    failed = ("(status_code = 'error' OR a['error.type'] IS NOT NULL "
              "OR _fx_str(a['langfuse.observation.level']) = 'ERROR')")
    return f"""
        SELECT *,
            {', '.join(f'{expr} AS {col}' for col, expr in cols.items())},
            {', '.join(f'{expr} AS _n_{col}' for col, expr in numbers.items())},
            {finish} AS finish_reason,
            coalesce({si_text}, _fx_system(_im), _req ->> 'instructions',
                     CASE WHEN json_type(_req, '$.system') = 'VARCHAR' THEN _req ->> 'system'
                     END) AS system_prompt,
            CASE WHEN {tool_kind} THEN NULL
                 WHEN len(_im) > 0 THEN _fx_input(_im)
                 ELSE _fx_str(a['input.value']) END AS input_text,
            CASE WHEN len(_om) > 0 AND NOT {tool_kind} THEN _fx_output(_om) ELSE coalesce(
                     _fx_output(_om), _fx_str(a['ai.response.text']),
                     _fx_str(a['ai.response.object']),
                     CASE WHEN {tool_kind} THEN coalesce({_first(TOOL_RESULT_KEYS)},
                         _fx_str(a['langfuse.observation.output'])) END,
                     _fx_str(a['output.value'])) END AS output_text,
            CASE WHEN {tool_kind} THEN coalesce({_first(TOOL_NAME_KEYS)}, name)
                 ELSE _fx_tool(_om).name END AS tool_name,
            CASE WHEN {tool_kind} THEN coalesce({_first(TOOL_ARGS_KEYS)},
                                                 _fx_str(a['input.value']),
                                                 _fx_str(a['langfuse.observation.input']))
                 ELSE _fx_tool(_om).args END AS tool_args,
            CASE WHEN {failed} THEN 'error'
                 WHEN status_code IN ('ok', 'unset') OR a['langfuse.observation.level'] IS NOT NULL
                 THEN 'ok' END AS status,
            CASE WHEN {failed} THEN coalesce(
                nullif(status_message, ''),
                _fx_str(a['langfuse.observation.status_message']),
                json_extract_string(list_filter(ev, lambda e: (e ->> 'name') = 'exception')[1],
                                    '$.attributes."exception.message"'),
                _fx_str(a['exception.message']), _fx_str(a['error.type'])) END AS error,
            round(date_diff('microsecond', ts, end_ts) / 1000.0, 3) AS duration_ms
        FROM _sx2
    """


def _consumed() -> str:
    """SQL (over ``e`` = one attribute entry) that is true when the entry's value is held
    exactly by a canonical column, so it need not stay in ``attributes``."""
    by_key: dict[str, list[str]] = {}
    for col, keys in TEXT_KEYS.items():
        for k in keys:
            by_key.setdefault(k, []).append(f"e._v = {col}")
    for k in TOOL_NAME_KEYS:
        by_key.setdefault(k, []).append("e._v = tool_name")
    for k in [*TOOL_ARGS_KEYS, "input.value"]:
        by_key.setdefault(k, []).append("(e._v = tool_args AND kind = 'tool')")
    for k in [*TOOL_RESULT_KEYS, "output.value", "ai.response.text"]:
        by_key.setdefault(k, []).append("e._v = output_text")
    by_key.setdefault("input.value", []).append("e._v = input_text")
    by_key.setdefault("ai.response.finishReason", []).append("e._v = finish_reason")
    for col, keys in NUMBER_KEYS.items():
        for k in keys:
            by_key.setdefault(k, []).append(f"try_cast(e._v AS DOUBLE) = {col}::DOUBLE")
    for k in KIND_KEYS:
        by_key.setdefault(k, []).append("_fx_kind(e._v) = kind")
    by_key["gen_ai.response.finish_reasons"] = [
        "(json_type(e.value) = 'ARRAY' AND json_array_length(e.value) = 1 "
        "AND e.value ->> 0 = finish_reason) OR e._v = finish_reason"]
    for keys, plain, fn, lst in ((IN_KEYS, "_plain_in", "_fx_msgs_in", "_im"),
                                 (OUT_KEYS, "_plain_out", "_fx_msgs_out", "_om")):
        for k in keys:
            by_key[k] = [f"({plain} AND json_type(_fx_unq(e.value)) IN ('ARRAY', 'VARCHAR') "
                         f"AND {fn}(e.value) = {lst})"]
    by_key["langfuse.observation.usage_details"] = [
        "coalesce(list_bool_and(list_transform(json_keys(_fx_unq(e.value)), "
        "lambda k: k IN ('input', 'output', 'total'))), true) "
        "AND (_fx_unq(e.value) ->> 'input' IS NULL "
        "     OR try_cast(_fx_unq(e.value) ->> 'input' AS BIGINT) = input_tokens) "
        "AND (_fx_unq(e.value) ->> 'output' IS NULL "
        "     OR try_cast(_fx_unq(e.value) ->> 'output' AS BIGINT) = output_tokens)"]
    by_key["langfuse.observation.cost_details"] = [
        "json_keys(_fx_unq(e.value)) = [] OR (json_keys(_fx_unq(e.value)) = ['total'] "
        "AND try_cast(_fx_unq(e.value) ->> 'total' AS DOUBLE) = cost_usd)"]
    by_key["langfuse.observation.level"] = [
        "(e._v = 'ERROR' AND status = 'error') OR (e._v = 'DEFAULT' AND status = 'ok')"]
    by_key["langfuse.observation.status_message"] = ["e._v = error"]
    by_key["gen_ai.system_instructions"] = ["_plain_si"]
    whens = " ".join(f"WHEN {literal(k)} THEN coalesce({' OR '.join(conds)}, false)"
                     for k, conds in by_key.items())
    prefix = ("(_plain_oi_in AND starts_with(e.key, 'llm.input_messages.')) "
              "OR (_plain_oi_out AND starts_with(e.key, 'llm.output_messages.')) "
              "OR (_plain_tl_in AND regexp_matches(e.key, '^gen_ai\\.prompt\\.[0-9]+\\.')) "
              "OR (_plain_tl_out AND regexp_matches(e.key, '^gen_ai\\.completion\\.[0-9]+\\.')) "
              "OR (regexp_matches(e.key, '^retrieval\\.documents\\.[0-9]+\\.document\\."
              "(id|content|score)$'))")
    return f"(CASE e.key {whens} ELSE false END) OR {prefix}"


def _layer4() -> str:
    """Which message attributes the canonical columns say in full."""
    fin = "coalesce(m ->> 'finish_reason', finish_reason) = finish_reason"
    return f"""
        SELECT *,
            _fx_plain(_im, ['system', 'user']) AS _plain_in,
            _fx_plain(_om, ['assistant'])
                AND list_bool_and(list_transform(_om, lambda m: {fin})) AS _plain_out,
            _si IS NULL OR (json_type(_si) = 'VARCHAR') OR (json_type(_si) = 'ARRAY'
                AND list_bool_and(list_transform(json_extract(_si, '$[*]'), lambda p:
                    (p ->> 'type') = 'text' AND json_keys(p) = ['type', 'content']))) AS _plain_si,
            _fx_flat_plain(_oi_in, ['system', 'user']) AS _plain_oi_in,
            _fx_flat_plain(_oi_out, ['assistant']) AS _plain_oi_out,
            _fx_flat_plain(_tl_in, ['system', 'user']) AS _plain_tl_in,
            _fx_flat_plain(_tl_out, ['assistant']) AS _plain_tl_out
        FROM _sx3
    """


def _attributes() -> str:
    keep = f"NOT ({_consumed()})"
    kept = (f"map_from_entries(list_transform(list_filter(list_transform(map_entries(a), "
            f"lambda e: {{'key': e.key, 'value': e.value, '_v': _fx_str(e.value)}}), "
            f"lambda e: {keep}), lambda e: {{'key': e.key, 'value': CASE WHEN e.key = 'metadata' "
            f"THEN _fx_unq(e.value) ELSE e.value END}}))")
    resource = ("map_from_entries(list_filter(map_entries(r), lambda e: NOT ("
                "(e.key = 'service.name' AND _fx_str(e.value) = feature) OR "
                "(e.key = 'service.version' AND _fx_str(e.value) = release))))")
    moderation = _moderation_event()
    events = (f"to_json(list_filter(ev, lambda e: NOT ({moderation}) AND NOT "
              "(e ->> 'name' IN ('gen_ai.content.prompt', 'gen_ai.content.completion') "
              "AND (_plain_in OR _plain_out))))")
    return (f"json_merge_patch(json_merge_patch(_fx_mapjson({kept}), coalesce(extra, '{{}}')), "
            f"json_object('resource', CASE WHEN cardinality(r) > 0 THEN "
            f"nullif(_fx_mapjson({resource})::VARCHAR, '{{}}')::JSON END, "
            f"'events', CASE WHEN len(ev) > 0 THEN nullif({events}::VARCHAR, '[]')::JSON END))")


def _moderation_event(e: str = "e") -> str:
    return f"regexp_matches(lower({e} ->> 'name'), 'moderation|guardrail')"


EVENT_TEXT = ["event_id", "trace_id", "span_id", "parent_id", "user_id", "session_id",
              "feature", "kind", "name", "provider", "model", "response_model", "prompt_name",
              "prompt_version", "retrieval_version", "release", "system_prompt", "input_text",
              "output_text", "finish_reason", "status", "error", "tool_name", "tool_args"]


def stage_spans(con: duckdb.DuckDBPyConnection) -> None:
    """``_spans`` -> ``_stage_events``, ``_stage_retrievals``, ``_stage_moderations``."""
    typed_cols, reasons = [], []
    for col, sql_type in NUMBER_TYPES.items():
        value, reason = typed(col, sql_type, f"_n_{col}")
        typed_cols.append(f"{value} AS {col}")
        reasons.append(reason)
    for name, sql in (("_sx1", _layer1()), ("_sx2", _layer2())):
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _sx3 AS
        SELECT * EXCLUDE ({', '.join(f'_n_{c}' for c in NUMBER_TYPES)}),
               {', '.join(typed_cols)}, coalesce(_reject, {', '.join(reasons)}) AS _why
        FROM ({_layer3()})
    """)
    con.execute(f"CREATE OR REPLACE TEMP VIEW _sx4 AS {_layer4()}")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _sx AS
        SELECT _ord, locator, span_id AS event_id, trace_id, span_id, parent_id, user_id,
               session_id, feature, kind, name, provider, model, response_model, prompt_name,
               prompt_version, retrieval_version, release, system_prompt, input_text,
               output_text, finish_reason, status, error, tool_name, tool_args, ts, _ts_raw,
               duration_ms, input_tokens, output_tokens, cost_usd,
               {_attributes()} AS attributes,
               _why AS _reject,
               CASE WHEN _why IS NOT NULL OR ts IS NULL THEN left(_raw, {RAW_LIMIT}) END AS _raw,
               _docs_flat, a['retrieval.documents'] AS _docs_list,
               _fx_unq(a['gen_ai.retrieval.documents']) AS _docs_genai,
               list_filter(ev, lambda e: {_moderation_event()}) AS _mods,
               CASE WHEN kind = 'guardrail' THEN a END AS _guard
        FROM _sx4
    """)
    _children(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stage_events AS SELECT "
                f"{', '.join(['_ord', 'locator', *EVENT_TEXT, 'ts', '_ts_raw', 'duration_ms'])}, "
                "input_tokens, output_tokens, cost_usd, attributes, _reject, _raw FROM _sx")
    con.execute("DROP TABLE _sx")
    for view in ("_sx4", "_sx3", "_sx2", "_sx1"):
        con.execute(f"DROP VIEW IF EXISTS {view}")


RAW_LIMIT = 2000


def _children(con: duckdb.DuckDBPyConnection) -> None:
    """Retrieved documents (OpenInference flattened or listed, GenAI JSON) and moderation
    results (span events named like moderation / guardrail, guardrail spans)."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _stage_retrievals AS
        WITH flat AS (
            SELECT _ord, unnest(list_transform(list_sort(list_distinct(list_transform(
                       _docs_flat, lambda e: e.n))),
                   lambda n: {'rank': n + 1,
                              'doc_id': _fx_flat_get(_docs_flat, n, 'document.id'),
                              'score': try_cast(_fx_flat_get(_docs_flat, n, 'document.score')
                                                AS DOUBLE),
                              'content': _fx_flat_get(_docs_flat, n, 'document.content')}))
                   AS d
            FROM _sx WHERE len(_docs_flat) > 0),
        listed AS (
            SELECT _ord, unnest(list_transform(
                       json_extract(coalesce(_fx_unq(_docs_list), _docs_genai), '$[*]'),
                       lambda x, i: {'rank': coalesce(try_cast(x ->> 'rank' AS INTEGER), i),
                                     'doc_id': coalesce(x ->> '$."document.id"', x ->> 'id',
                                                        x ->> 'doc_id'),
                                     'score': try_cast(coalesce(x ->> '$."document.score"',
                                                                x ->> 'score') AS DOUBLE),
                                     'content': coalesce(x ->> '$."document.content"',
                                                         x ->> 'content', x ->> 'text')})) AS d
            FROM _sx WHERE len(_docs_flat) = 0
                AND (_docs_list IS NOT NULL OR _docs_genai IS NOT NULL))
        SELECT _ord, d.rank::INTEGER AS rank, d.doc_id, d.score, d.content
        FROM (SELECT * FROM flat UNION ALL SELECT * FROM listed)
    """)
    fields = {f: (f"coalesce(json_extract(m, '$.attributes.\"{f}\"'), json_extract(m, '$.attributes.\"moderation.{f}\"'), "
                  f"json_extract(m, '$.attributes.\"guardrail.{f}\"'))") for f in MODERATION_FIELDS}
    guard = {f: f"coalesce(_guard['{f}'], _guard['moderation.{f}'], _guard['guardrail.{f}'])"
             for f in MODERATION_FIELDS}
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_moderations AS
        WITH ev AS (
            SELECT _ord, unnest(_mods) AS m FROM _sx WHERE len(_mods) > 0),
        rows AS (
            SELECT _ord, {', '.join(f'{expr} AS {f}' for f, expr in fields.items())} FROM ev
            UNION ALL
            SELECT _ord, {', '.join(f'{expr} AS {f}' for f, expr in guard.items())}
            FROM _sx WHERE _guard IS NOT NULL
                AND ({' OR '.join(f'{expr} IS NOT NULL' for expr in guard.values())}))
        SELECT _ord, _fx_str(stage) AS stage, _fx_str(category) AS category,
               try_cast(_fx_str(flagged) AS BOOLEAN) AS flagged,
               try_cast(_fx_str(score) AS DOUBLE) AS score, _fx_str(action) AS action
        FROM rows
    """)

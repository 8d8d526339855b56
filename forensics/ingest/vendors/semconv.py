"""Spans -> canonical events, whatever convention their attributes follow.

Every reader (OTLP, Phoenix / OpenInference, SDK span dumps, Langfuse, LangSmith,
OpenAI logs, LiteLLM) first builds ``_spans``, one row per span or call:

    _ord, locator, trace_id, span_id, parent_id, name, _ts_raw, ts, end_ts,
    kind_hint (a span kind the envelope states: Phoenix span_kind, Langfuse type),
    status_code (ok / error / unset / NULL), status_message,
    a  LIST(STRUCT(k VARCHAR, v JSON))  the span's attributes, flat dotted keys
       (record readers put their fields here under the vendor's OTel attribute names),
    r  LIST(STRUCT(k VARCHAR, v JSON))  its resource's attributes,
    ev JSON[]    span events and joined log records: {name, time, attributes, body},
    extra JSON   envelope fields with no canonical column (kept in ``attributes``),
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

An OTLP span in the older convention (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``,
the prompt as a ``gen_ai.content.prompt`` span event) lands in the same columns:

>>> def kv(key, value):
...     return {"key": key, "value": {"stringValue": value}}
>>> span = {"traceId": "aa", "spanId": "bb", "name": "chat",
...         "startTimeUnixNano": "1772445600000000000",
...         "endTimeUnixNano": "1772445600500000000",
...         "attributes": [kv("gen_ai.system", "openai"), kv("gen_ai.request.model", "gpt-4"),
...                        {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": "7"}}],
...         "events": [{"name": "gen_ai.content.prompt", "timeUnixNano": "1772445600000000000",
...                     "attributes": [kv("gen_ai.prompt", "Say hi")]}]}
>>> doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
>>> _ = Path("old.jsonl").write_text(json.dumps(doc))
>>> with forensics.open("new.duckdb") as new:
...     _ = new.load("old.jsonl")
...     new.sql("SELECT provider, model, input_tokens, input_text FROM events").df.row(0)
('openai', 'gpt-4', 7, 'Say hi')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import duckdb

from forensics.ingest.vendors.common import literal, typed

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
    """The value (JSON) of attribute ``key``, NULL when absent."""
    return f"{src}v[list_position({src}k, {literal(key)})]"


def _first(keys: list[str], src: str = "a") -> str:
    parts = [f"_fx_str({_a(k, src)})" for k in keys]
    return parts[0] if len(parts) == 1 else "coalesce(" + ", ".join(parts) + ")"


def _pick(keys: list[str]) -> str:
    """{v: text, k: key} of the first present attribute among ``keys``."""
    parts = [f"CASE WHEN {_a(k)} IS NOT NULL THEN {{'v': _fx_str({_a(k)}), 'k': {literal(k)}}} END"
             for k in keys]
    return "coalesce(" + ", ".join(parts) + ")"


def _raw(keys: list[str]) -> tuple[str, str]:
    """(first present value, the key it came from) among ``keys``."""
    value = "coalesce(" + ", ".join(_a(k) for k in keys) + ")"
    key = "CASE " + " ".join(f"WHEN {_a(k)} IS NOT NULL THEN {literal(k)}" for k in keys) + " END"
    return value, key


# "Plain" message lists: text-only, at most a system and a user message in, one assistant
# message out. For them system_prompt / input_text / output_text say everything, so the
# attribute need not stay in ``attributes``; and their text is read by path, fast.
_S = r"\s*"
_STR = r'"(?:[^"\\]|\\.)*"'
_PART = (r"\{" + _S + r'"type"' + _S + ":" + _S + r'"text"' + _S + "," + _S + r'"content"'
         + _S + ":" + _S + _STR + _S + r"\}")


def _msg(role: str, finish: bool = False) -> str:
    parts = r'"parts"' + _S + ":" + _S + r"\[" + _S + _PART + _S + r"\]"
    content = r'"content"' + _S + ":" + _S + _STR
    tail = ("(?:" + _S + "," + _S + r'"finish_reason"' + _S + ":" + _S + _STR + ")?") \
        if finish else ""
    return (r"\{" + _S + r'"role"' + _S + ":" + _S + f'"{role}"' + _S + "," + _S
            + f"(?:{parts}|{content}){tail}" + _S + r"\}")


PLAIN_IN = (_S + r"\[" + _S + f"(?:{_msg('system')}{_S},{_S})?" + _msg("user") + _S + r"\]"
            + _S)
PLAIN_OUT = _S + r"\[" + _S + _msg("assistant", finish=True) + _S + r"\]" + _S
PLAIN_SI = _S + r"\[" + _S + _PART + _S + r"\]" + _S


def _layer_kv() -> str:
    """Attribute lists as parallel key / value lists (lookups by list_position); a
    ``metadata`` attribute holding an object (OpenInference's JSON string, Langfuse's user
    metadata) lends its members, looked up after the span's own attributes."""
    return """
        SELECT * EXCLUDE (a, _meta),
            CASE WHEN json_type(_meta) = 'OBJECT'
                 THEN list_concat(list_filter(a, lambda e: e.k <> 'metadata'), _fx_kvobj(_meta))
                 ELSE a END AS a,
            list_transform(r, lambda e: e.k) AS rk, list_transform(r, lambda e: e.v) AS rv
        FROM (SELECT *, _fx_unq(list_filter(a, lambda e: e.k = 'metadata')[1].v) AS _meta
              FROM _spans)
    """


def _layer0() -> str:
    """Per span: the kind, and which attribute carries the request / response."""
    vercel = ("CASE WHEN {op} IS NULL THEN NULL WHEN {op} = 'ai.toolCall' THEN 'tool' "
              "WHEN regexp_matches({op}, '^ai\\.embed.*\\.do') THEN 'embedding' "
              "WHEN regexp_matches({op}, '\\.do[A-Z]') THEN 'llm' "
              "ELSE 'chain' END").format(op=f"_fx_str({_a('ai.operationId')})")
    has_model = ("CASE WHEN " + " OR ".join(f"{_a(k)} IS NOT NULL"
                                            for k in ["gen_ai.request.model", "llm.model_name",
                                                      "gen_ai.response.model"])
                 + " THEN 'llm' END")
    in_raw, in_key = _raw(IN_KEYS)
    out_raw, out_key = _raw(OUT_KEYS)
    return f"""
        SELECT *,
            _fx_kind(coalesce(kind_hint, {_first(KIND_KEYS)}, {vercel}, {has_model},
                              CASE WHEN ({_first(TOOL_NAME_KEYS)}) IS NOT NULL THEN 'tool' END,
                              'span')) AS kind,
            {in_raw} AS _in_raw, {in_key} AS _in_key,
            {out_raw} AS _out_raw, {out_key} AS _out_key,
            {_a('gen_ai.system_instructions')} AS _si_raw
        FROM (SELECT *, list_transform(a, lambda e: e.k) AS ak,
                        list_transform(a, lambda e: e.v) AS av FROM _sxkv)
    """


def _layer1() -> str:
    """Texts of the payloads; content carried by events; flattened message entries."""
    ev_attr = ("CASE WHEN len(ev) > 0 THEN _fx_unq(json_extract(list_filter(ev, lambda e: "
               "(e ->> 'name') = {name})[1], '$.attributes.\"{key}\"')) END")
    details = ("CASE WHEN len(ev) > 0 THEN json_extract(list_filter(ev, lambda e: "
               "(e ->> 'name') = 'gen_ai.client.inference.operation.details')[1], "
               "'attributes') END")
    events = ", ".join(literal(n) for n in MESSAGE_EVENTS)
    flat = ("CASE WHEN list_bool_or(list_transform(ak, lambda k: starts_with(k, '{p}.'))) "
            "THEN _fx_flat_entries(a, '{p}') ELSE [] END")
    return f"""
        SELECT *,
            _fx_str(_in_raw) AS _in_txt, _fx_str(_out_raw) AS _out_txt,
            coalesce(_fx_str(_si_raw), _fx_str(json_extract({details},
                                                            '$."gen_ai.system_instructions"')))
                AS _si_txt,
            {flat.format(p='llm.input_messages')} AS _oi_in,
            {flat.format(p='llm.output_messages')} AS _oi_out,
            {flat.format(p='gen_ai.prompt')} AS _tl_in,
            {flat.format(p='gen_ai.completion')} AS _tl_out,
            {flat.format(p='retrieval.documents')} AS _docs_flat,
            coalesce(_fx_unq(json_extract({details}, '$."gen_ai.input.messages"')),
                     {ev_attr.format(name="'gen_ai.content.prompt'", key="gen_ai.prompt")})
                AS _ev_in_v,
            coalesce(_fx_unq(json_extract({details}, '$."gen_ai.output.messages"')),
                     {ev_attr.format(name="'gen_ai.content.completion'", key="gen_ai.completion")})
                AS _ev_out_v,
            CASE WHEN len(ev) > 0 THEN list_transform(
                list_filter(ev, lambda e: (e ->> 'name') IN ({events})),
                lambda e: json_merge_patch(CASE WHEN json_type(e, '$.body') = 'OBJECT'
                    THEN json_extract(e, '$.body')
                    ELSE json_object('content', json_extract(e, '$.body')) END,
                    json_object('role', coalesce(e ->> '$.body.role',
                        regexp_extract(e ->> 'name', 'gen_ai\\.(.*)\\.message', 1)))))
                END AS _ev_in,
            CASE WHEN len(ev) > 0 THEN list_transform(
                list_filter(ev, lambda e: (e ->> 'name') = 'gen_ai.choice'),
                lambda e: json_extract(e, '$.body')) END AS _ev_choice
        FROM _sx0
    """


def _layer2() -> str:
    """Plain lists and their texts by path; JSON values for the general path."""
    return f"""
        SELECT *,
            CASE WHEN _in_plain THEN json_extract_string(
                _in_txt, ['$[0].role', '$[0].parts[0].content', '$[0].content',
                          '$[#-1].parts[0].content', '$[#-1].content']) END AS _in_fast,
            CASE WHEN _out_plain THEN json_extract_string(
                _out_txt, ['$[0].parts[0].content', '$[0].content', '$[0].finish_reason'])
                END AS _out_fast,
            CASE WHEN NOT _in_plain
                 THEN coalesce(_fx_jtext(_in_txt), to_json(_fx_dequote(_in_txt))) END
                AS _in_v,
            CASE WHEN NOT _out_plain
                 THEN coalesce(_fx_jtext(_out_txt), to_json(_fx_dequote(_out_txt))) END
                AS _out_v
        FROM (SELECT *,
                coalesce(regexp_full_match(_in_txt, {literal(PLAIN_IN)}), false) AS _in_plain,
                coalesce(regexp_full_match(_out_txt, {literal(PLAIN_OUT)}), false) AS _out_plain,
                coalesce(regexp_full_match(_si_txt, {literal(PLAIN_SI)}), false) AS _si_plain
              FROM _sx1)
    """


def _layer3() -> str:
    """Message lists (JSON[]) for the general path."""
    req = ", ".join(literal(k) for k in REQ_KEYS)
    resp = ", ".join(literal(k) for k in RESP_KEYS)
    return f"""
        SELECT *,
            CASE WHEN _in_plain THEN NULL
                 WHEN _in_v IS NOT NULL AND _in_key NOT IN ({req}) THEN _fx_inlist(_in_v)
                 ELSE coalesce(_fx_inlist(_ev_in_v), CASE WHEN len(_ev_in) > 0 THEN _ev_in END,
                               _fx_flat_msgs(_oi_in), _fx_flat_msgs(_tl_in), _fx_inlist(_in_v))
                 END AS _im,
            CASE WHEN _out_plain THEN NULL
                 WHEN _out_v IS NOT NULL AND _out_key NOT IN ({resp}) THEN _fx_outlist(_out_v)
                 ELSE coalesce(_fx_outlist(_ev_out_v),
                               CASE WHEN len(_ev_choice) > 0 THEN _ev_choice END,
                               _fx_flat_msgs(_oi_out), _fx_flat_msgs(_tl_out),
                               _fx_outlist(_out_v)) END AS _om,
            CASE WHEN _in_key IN ({req}) THEN _in_v END AS _req,
            CASE WHEN _out_key IN ({resp}) THEN _out_v END AS _resp,
            CASE WHEN _si_txt IS NOT NULL AND NOT _si_plain
                 THEN coalesce(_fx_jtext(_si_txt), to_json(_si_txt)) END AS _si_v
        FROM _sx2
    """


def _layer3b() -> str:
    """Role and text of every message (computed once), and the first tool call asked for."""
    return """
        SELECT *,
            CASE WHEN len(_im) > 0 THEN list_transform(_im, lambda m: {'r': _fx_role(m),
                                                                        't': _fx_mtext(m)})
                 END AS _imx,
            CASE WHEN len(_om) > 0 THEN list_filter(list_transform(_om, lambda m: _fx_mtext(m)),
                                                     lambda t: t IS NOT NULL) END AS _omx,
            CASE WHEN len(_om) > 0 THEN _fx_tool(_om) END AS _tool
        FROM _sx3
    """


def _layer4() -> str:
    """The canonical columns (with the attribute each came from, for ``_ck``)."""
    picks = {c: _pick(keys) for c, keys in TEXT_KEYS.items()}
    numbers = {c: _pick(keys) for c, keys in NUMBER_KEYS.items()}
    return f"""
        SELECT *,
            {', '.join(f'{expr} AS _p_{col}' for col, expr in {**picks, **numbers}.items())}
        FROM _sx3b
    """


def _layer4b() -> str:
    cols = {c: f"_p_{c}.v" for c in TEXT_KEYS}
    for col, key in RESOURCE_KEYS.items():
        cols[col] = f"coalesce({cols[col]}, _fx_str({_a(key, 'r')}))"
    invocation = f"_fx_unq({_a('llm.invocation_parameters')}) ->> 'model'"
    cols["model"] = (f"CASE WHEN _p_model.k = 'gen_ai.request.model' THEN _p_model.v ELSE "
                     f"coalesce({invocation}, _p_model.v, CASE WHEN json_type(_req, '$.model') "
                     f"= 'VARCHAR' THEN _req ->> 'model' END) END")
    cols["response_model"] = ("coalesce(_p_response_model.v, CASE WHEN json_type(_resp, '$.model') "
                              "= 'VARCHAR' THEN _resp ->> 'model' END, "
                              "_resp ->> '$.llm_output.model_name')")
    cols["user_id"] = ("coalesce(_p_user_id.v, CASE WHEN json_type(_req, '$.user') = "
                       "'VARCHAR' THEN nullif(_req ->> 'user', '') END)")
    # one vocabulary (_fx_finish); a list, or a list held as JSON text, gives its first
    finish = (f"_fx_finish(coalesce(CASE json_type({_a('gen_ai.response.finish_reasons')}) "
              f"WHEN 'ARRAY' THEN {_a('gen_ai.response.finish_reasons')} ->> 0 "
              f"ELSE _fx_str({_a('gen_ai.response.finish_reasons')}) END, "
              f"{_first(FINISH_KEYS[1:])}, _out_fast[3], _om[1] ->> 'finish_reason', "
              "_om[1] ->> '$.\"message.finish_reason\"', _om[1] ->> 'stop_reason', "
              "_resp ->> 'stop_reason', _resp ->> '$.incomplete_details.reason'))")
    si_text = ("CASE WHEN _si_plain THEN json_extract_string(_si_txt, '$[0].content') "
               "WHEN json_type(_si_v) = 'ARRAY' THEN _fx_ptext(json_extract(_si_v, '$[*]')) "
               "WHEN json_type(_si_v) = 'OBJECT' THEN _fx_mtext(_si_v) ELSE _si_txt END")
    tool = "kind = 'tool'"
    numbers = {c: f"_p_{c}.v" for c in NUMBER_KEYS}
    usage = {"input_tokens": ["input", "prompt_tokens", "input_tokens", "promptTokens"],
             "output_tokens": ["output", "completion_tokens", "output_tokens",
                               "completionTokens"]}
    holders = [f"_fx_unq({_a('langfuse.observation.usage_details')})",
               "json_extract(_resp, '$.usage')", "json_extract(_resp, '$.usage_metadata')",
               "json_extract(_resp, '$.llm_output.token_usage')"]
    for col, names in usage.items():
        numbers[col] = (f"coalesce({numbers[col]}, "
                        + ", ".join(f"json_extract_string({h}, '$.{n}')"
                                    for h in holders for n in names) + ")")
    numbers["cost_usd"] = (f"coalesce({numbers['cost_usd']}, "
                           f"_fx_unq({_a('langfuse.observation.cost_details')}) ->> 'total')")
    level = f"_fx_str({_a('langfuse.observation.level')})"
    failed = f"(status_code = 'error' OR {_a('error.type')} IS NOT NULL OR {level} = 'ERROR')"
    req_keys = ", ".join(literal(k) for k in REQ_KEYS)
    return f"""
        SELECT *,
            {', '.join(f'{expr} AS {col}' for col, expr in cols.items())},
            {', '.join(f'{expr} AS _n_{col}' for col, expr in numbers.items())},
            {finish} AS finish_reason,
            coalesce({si_text}, CASE WHEN _in_fast[1] = 'system'
                                     THEN coalesce(_in_fast[2], _in_fast[3]) END,
                     _fx_joined(list_transform(list_filter(_imx, lambda x: x.r IN ('system',
                         'developer') AND x.t IS NOT NULL), lambda x: x.t)),
                     _req ->> 'instructions',
                     CASE WHEN json_type(_req, '$.system') = 'VARCHAR' THEN _req ->> 'system'
                     END, _resp ->> 'instructions') AS system_prompt,
            CASE WHEN {tool} THEN NULL
                 WHEN _in_plain THEN coalesce(_in_fast[4], _in_fast[5])
                 WHEN len(_im) > 0 THEN coalesce(
                     list_filter(_imx, lambda x: x.r IN ('user', 'human'))[-1].t,
                     list_filter(_imx, lambda x: coalesce(x.r, '') NOT IN ('system',
                                                                          'developer'))[-1].t)
                 ELSE coalesce(_fx_str({_a('input.value')}),
                               CASE WHEN json_type(_in_raw) = 'VARCHAR'
                                    THEN _fx_dequote(_in_txt) END)
                 END AS input_text,
            CASE WHEN _out_plain THEN coalesce(_out_fast[1], _out_fast[2])
                 WHEN len(_om) > 0 AND NOT {tool} THEN _fx_joined(_omx)
                 ELSE coalesce(_fx_joined(_omx), _fx_str({_a('ai.response.text')}),
                               _fx_str({_a('ai.response.object')}),
                               CASE WHEN {tool} THEN {_first(TOOL_RESULT_KEYS)} END,
                               _fx_dequote(_fx_str({_a('output.value')})),
                               CASE WHEN json_type(_out_raw) = 'VARCHAR'
                                    THEN _fx_dequote(_out_txt) END)
                 END AS output_text,
            CASE WHEN {tool} THEN coalesce({_first(TOOL_NAME_KEYS)}, name)
                 ELSE _tool.name END AS tool_name,
            CASE WHEN {tool} THEN coalesce({_first(TOOL_ARGS_KEYS)},
                                           _fx_str({_a('input.value')}),
                                           CASE WHEN _in_key IN ({req_keys}) THEN _in_txt END)
                 ELSE _tool.args END AS tool_args,
            CASE WHEN {failed} THEN 'error'
                 WHEN status_code IN ('ok', 'unset') OR {level} IS NOT NULL
                 THEN 'ok' END AS status,
            CASE WHEN {failed} THEN coalesce(
                nullif(status_message, ''),
                _fx_str({_a('langfuse.observation.status_message')}),
                json_extract_string(list_filter(ev, lambda e: (e ->> 'name') = 'exception')[1],
                                    '$.attributes."exception.message"'),
                _fx_str({_a('exception.message')}), _fx_str({_a('error.type')})) END AS error,
            round(date_diff('microsecond', ts, end_ts) / 1000.0, 3) AS duration_ms
        FROM _sx4p
    """


def _consumed_keys() -> tuple[str, str]:
    """The attribute keys whose value a canonical column holds exactly: they need not
    stay in ``attributes``: the winning key of each column, plus a few special cases,
    tested only when present (``_sp``, the second SQL returned, lists them)."""
    checks: dict[str, str] = {
        "gen_ai.response.finish_reasons":
            "(json_type(@J@) = 'ARRAY' AND json_array_length(@J@) = 1 "
            "AND (@J@ ->> 0) = finish_reason) OR @V@ = finish_reason",
        "ai.response.finishReason": "@V@ = finish_reason",
        "gen_ai.system_instructions": "_si_plain OR (_si_txt = system_prompt "
                                      "AND _fx_jtext(_si_txt) IS NULL)",
        "langfuse.observation.usage_details":
            "coalesce(list_bool_and(list_transform(json_keys(_fx_unq(@J@)), "
            "lambda k: k IN ('input', 'output', 'total'))), true) "
            "AND (_fx_unq(@J@) ->> 'input' IS NULL "
            "     OR try_cast(_fx_unq(@J@) ->> 'input' AS BIGINT) = input_tokens) "
            "AND (_fx_unq(@J@) ->> 'output' IS NULL "
            "     OR try_cast(_fx_unq(@J@) ->> 'output' AS BIGINT) = output_tokens)",
        "langfuse.observation.cost_details":
            "json_keys(_fx_unq(@J@)) = [] OR (json_keys(_fx_unq(@J@)) = ['total'] "
            "AND try_cast(_fx_unq(@J@) ->> 'total' AS DOUBLE) = cost_usd)",
        "langfuse.observation.level":
            "(@V@ = 'ERROR' AND status = 'error') OR (@V@ = 'DEFAULT' AND status = 'ok')",
        "langfuse.observation.status_message": "@V@ = error",
        "input.value": "@V@ = input_text OR (@V@ = tool_args AND kind = 'tool')",
        "output.value": "@V@ = output_text",
        "ai.response.text": "@V@ = output_text",
    }
    for k in KIND_KEYS:
        checks[k] = "_fx_kind(@V@) = kind"
    for k in TOOL_NAME_KEYS:
        checks[k] = "@V@ = tool_name"
    for k in TOOL_ARGS_KEYS:
        checks[k] = "@V@ = tool_args"
    for k in TOOL_RESULT_KEYS:
        checks[k] = "@V@ = output_text"
    for key, fields in (("gen_ai.retrieval.documents", "'id', 'score', 'content', 'rank'"),
                        ("retrievals", "'rank', 'doc_id', 'score', 'content'"),
                        ("moderations", ", ".join(f"'{f}'" for f in MODERATION_FIELDS))):
        checks[key] = (f"json_type(_fx_unq(@J@)) = 'ARRAY' AND coalesce(list_bool_and("
                       f"list_transform(json_extract(_fx_unq(@J@), '$[*]'), lambda d: "
                       f"json_type(d) = 'OBJECT' AND list_bool_and(list_transform(json_keys(d), "
                       f"lambda k: k IN ({fields}))))), true)")
    cases = [f"_p_{c}.k" for c in [*TEXT_KEYS, *NUMBER_KEYS]]
    present = "_sp"
    for key, cond in checks.items():
        cond = cond.replace("@V@", f"_fx_str({_a(key)})").replace("@J@", _a(key))
        cases.append(f"CASE WHEN list_contains({present}, {literal(key)}) AND coalesce({cond}, "
                     f"false) THEN {literal(key)} END")
    cases.append("CASE WHEN _in_plain OR (_in_txt = input_text AND _fx_jtext(_in_txt) IS NULL) "
                 "THEN _in_key END")
    cases.append("CASE WHEN NOT _out_plain AND _out_txt = output_text "
                 "AND _fx_jtext(_out_txt) IS NULL THEN _out_key END")
    cases.append("CASE WHEN _out_plain AND coalesce(_out_fast[3], finish_reason, '') "
                 "= coalesce(finish_reason, '') THEN _out_key END")
    specials = ", ".join(literal(k) for k in checks)
    return ("list_filter([" + ", ".join(cases) + "], lambda k: k IS NOT NULL)",
            f"list_filter(ak, lambda k: k IN ({specials}))")


def _layer5() -> str:
    """Which attributes the canonical columns say in full."""
    return f"""
        SELECT *,
            len(_oi_in) > 0 AND _fx_flat_plain(_oi_in, ['system', 'user']) AS _plain_oi_in,
            len(_oi_out) > 0 AND _fx_flat_plain(_oi_out, ['assistant']) AS _plain_oi_out,
            len(_tl_in) > 0 AND _fx_flat_plain(_tl_in, ['system', 'user']) AS _plain_tl_in,
            len(_tl_out) > 0 AND _fx_flat_plain(_tl_out, ['assistant']) AS _plain_tl_out,
            {_consumed_keys()[0]} AS _ck
        FROM (SELECT *, {_consumed_keys()[1]} AS _sp FROM _sx4t)
    """


def _attributes() -> str:
    """Every attribute no canonical column holds, the reader's envelope fields (``extra``),
    the resource attributes and the events not read into a table, as one JSON object."""
    prefixed = ("(_plain_oi_in AND starts_with(e.k, 'llm.input_messages.')) "
                "OR (_plain_oi_out AND starts_with(e.k, 'llm.output_messages.')) "
                "OR (_plain_tl_in AND regexp_matches(e.k, '^gen_ai\\.prompt\\.[0-9]+\\.')) "
                "OR (_plain_tl_out AND regexp_matches(e.k, '^gen_ai\\.completion\\.[0-9]+\\.')) "
                "OR (starts_with(e.k, 'retrieval.documents.') AND regexp_matches(e.k, "
                "'^retrieval\\.documents\\.[0-9]+\\.document\\.(id|content|score)$'))")
    # a flattened finish reason that the canonical word replaced stays, as sent
    raw_finish = ("(ends_with(e.k, 'finish_reason') "
                  "AND _fx_str(e.v) IS DISTINCT FROM finish_reason)")
    kept = (f"CASE WHEN len(_oi_in) + len(_oi_out) + len(_tl_in) + len(_tl_out) "
            f"+ len(_docs_flat) = 0 THEN list_filter(a, lambda e: NOT list_contains(_ck, e.k)) "
            f"ELSE list_filter(a, lambda e: NOT list_contains(_ck, e.k) "
            f"AND (NOT ({prefixed}) OR {raw_finish})) END")
    resource = ("list_filter(r, lambda e: NOT ("
                "(e.k = 'service.name' AND _fx_str(e.v) = feature) OR "
                "(e.k = 'service.version' AND _fx_str(e.v) = release)))")
    events = (f"list_filter(ev, lambda e: NOT ({_moderation_event()}) AND NOT coalesce("
              "(e ->> 'name') IN ('gen_ai.content.prompt', 'gen_ai.content.completion') "
              "AND (_in_plain OR _out_plain), false))")
    more = (f"_fx_kvs([{{'k': 'resource', 'v': CASE WHEN len(r) > 0 THEN "
            f"nullif(_fx_kvjson({resource})::VARCHAR, '{{}}')::JSON END}}, "
            f"{{'k': 'events', 'v': CASE WHEN len(ev) > 0 THEN "
            f"nullif(to_json({events})::VARCHAR, '[]')::JSON END}}])")
    return (f"_fx_kvjson(list_concat({kept}, CASE WHEN extra IS NULL OR extra::VARCHAR = '{{}}' "
            f"THEN [] ELSE _fx_kvobj(extra) END, {more}))")


def _moderation_event(e: str = "e") -> str:
    # an event with no name (a plain OTLP log record) is not one: false, not NULL, so a
    # filter on it keeps the event
    return f"coalesce(regexp_matches(lower({e} ->> 'name'), 'moderation|guardrail'), false)"


EVENT_TEXT = ["event_id", "trace_id", "span_id", "parent_id", "user_id", "session_id",
              "feature", "kind", "name", "provider", "model", "response_model", "prompt_name",
              "prompt_version", "retrieval_version", "release", "system_prompt", "input_text",
              "output_text", "finish_reason", "status", "error", "tool_name", "tool_args"]
RAW_LIMIT = 2000


RawSql = Callable[[duckdb.DuckDBPyConnection], Iterable[str]]


def stage_spans(con: duckdb.DuckDBPyConnection, raw_sql: RawSql | None = None) -> None:
    """``_spans`` -> ``_stage_events``, ``_stage_retrievals``, ``_stage_moderations``, in
    one pipelined statement (each layer below is a CTE, not a copy).

    ``raw_sql``, when given, yields queries over ``_needs_raw(_ord)`` (with ``_sx``, the
    staged rows), each yielding ``(_ord, raw)``: the source text of the records that may
    be rejected (a stage-time reason, no timestamp, an id repeated in the file or already
    in the case). Readers whose ``_raw`` is costly to carry for every record give it; the
    others carry ``_raw`` in ``_spans``."""
    flatten_spans(con, keep_raw=raw_sql is None)
    finish_spans(con, raw_sql)


def flatten_spans(con: duckdb.DuckDBPyConnection, *, source: str = "",
                  params: list[Any] | None = None, append: bool = False,
                  keep_raw: bool = True) -> None:
    """``_spans`` -> ``_sx`` (created, or appended to), one statement. ``source``: CTEs
    (each followed by a comma) put first, one of them named ``_spans`` to read instead of
    the view, with ``params`` for its ``?``. ``keep_raw``: keep ``_raw`` of the rows
    rejected here (a reason, no timestamp)."""
    con.execute(flatten_statement(source=source, append=append, keep_raw=keep_raw),
                params or [])


def flatten_statement(*, source: str = "", append: bool = False, keep_raw: bool = True) -> str:
    """The statement :func:`flatten_spans` runs, for a reader that runs it itself (on a
    relation, say).

    >>> flatten_statement(source="_spans").split(" AS ")[0]
    'CREATE OR REPLACE TEMP TABLE _sx'
    >>> flatten_statement(source="_spans", append=True).split(" ")[:3]
    ['INSERT', 'INTO', '_sx']
    """
    verb = "INSERT INTO _sx" if append else "CREATE OR REPLACE TEMP TABLE _sx AS"
    return f"{verb} {_flatten_query(source, keep_raw)}"


def _flatten_query(source: str, keep_raw: bool) -> str:
    typed_cols, reasons = [], []
    for col, sql_type in NUMBER_TYPES.items():
        value, reason = typed(col, sql_type, f"_n_{col}")
        typed_cols.append(f"{value} AS {col}")
        reasons.append(reason)
    layers = [("_sxkv", _layer_kv()), ("_sx0", _layer0()), ("_sx1", _layer1()),
              ("_sx2", _layer2()), ("_sx3", _layer3()), ("_sx3b", _layer3b()),
              ("_sx4p", _layer4()), ("_sx4", _layer4b()),
              ("_sx4t", f"SELECT * EXCLUDE ({', '.join(f'_n_{c}' for c in NUMBER_TYPES)}), "
                        f"{', '.join(typed_cols)}, coalesce(_reject, {', '.join(reasons)}) "
                        f"AS _why FROM _sx4"),
              ("_sx5", _layer5())]
    ctes = ",\n".join(f"{name} AS ({sql})" for name, sql in layers)
    guard = ", ".join(
        f"CASE WHEN kind = 'guardrail' THEN coalesce({_a(f)}, {_a('moderation.' + f)}, "
        f"{_a('guardrail.' + f)}) END AS _g_{f}" for f in MODERATION_FIELDS)
    raw = (f"CASE WHEN _why IS NOT NULL OR ts IS NULL THEN left(_raw::VARCHAR, {RAW_LIMIT}) END"
           if keep_raw else "NULL::VARCHAR")
    return f"""
        WITH {source}{ctes}
        SELECT _ord, locator, span_id AS event_id, trace_id, span_id, parent_id, user_id,
               session_id, feature, kind, name, provider, model, response_model, prompt_name,
               prompt_version, retrieval_version, release, system_prompt, input_text,
               output_text, finish_reason, status, error, tool_name, tool_args, ts, _ts_raw,
               duration_ms, input_tokens, output_tokens, cost_usd,
               {_attributes()} AS attributes,
               _why AS _reject, {raw} AS _raw,
               CASE WHEN len(_docs_flat) > 0 THEN _docs_flat END AS _docs_flat,
               {_a('retrieval.documents')} AS _docs_list,
               coalesce(_fx_unq({_a('gen_ai.retrieval.documents')}), _fx_unq({_a('retrievals')}))
                   AS _docs_genai,
               list_concat(CASE WHEN len(ev) > 0
                                THEN list_filter(ev, lambda e: {_moderation_event()}) END,
                   list_transform(json_extract(_fx_unq({_a('moderations')}), '$[*]'),
                                  lambda m: json_object('name', 'moderation', 'attributes', m)))
                   AS _mods,
               {guard}
        FROM _sx5
    """


def finish_spans(con: duckdb.DuckDBPyConnection, raw_sql: RawSql | None = None) -> None:
    """``_sx`` -> ``_stage_events`` and its children (see :func:`stage_spans`)."""
    if raw_sql:
        _fill_raw(con, raw_sql)
    mark_rollups(con)
    _children(con)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _stage_events AS SELECT "
                f"{', '.join(['_ord', 'locator', *EVENT_TEXT, 'ts', '_ts_raw', 'duration_ms'])}, "
                "input_tokens, output_tokens, cost_usd, attributes, _reject, _raw FROM _sx")
    con.execute("DROP TABLE _sx")


ROLLUP_DEPTH = 32


def mark_rollups(con: duckdb.DuckDBPyConnection, table: str = "_sx") -> None:
    """Usage that is a roll-up of its children's is not counted twice: when a span that is
    not itself a model call (an agent, chain, workflow span) has tokens (or cost) and a
    descendant in the same file with tokens (or cost), as agent and orchestrator spans of
    agent frameworks do, its numbers move out of the canonical
    columns into ``attributes`` (``forensics.usage_rollup``), so summed over a trace the
    columns add up to what the model calls reported.

    Set-based: the spans with usage that are some span's parent are found by a join, and
    only from those is the tree walked down (a recursive CTE, at most ROLLUP_DEPTH levels).
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ru_top AS
        SELECT DISTINCT p._ord, p.span_id, p.trace_id
        FROM {table} p SEMI JOIN {table} c
             ON c.parent_id = p.span_id AND c.trace_id IS NOT DISTINCT FROM p.trace_id
        WHERE p.span_id IS NOT NULL AND coalesce(p.kind, '') NOT IN ('llm', 'embedding')
              AND (p.input_tokens IS NOT NULL
              OR p.output_tokens IS NOT NULL OR p.cost_usd IS NOT NULL)
    """)
    if not con.execute("SELECT EXISTS (SELECT 1 FROM _ru_top)").fetchall()[0][0]:
        con.execute("DROP TABLE _ru_top")
        return
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _ru AS
        WITH RECURSIVE down(top, span_id, trace_id, depth, tok, cost) AS (
            SELECT t._ord, c.span_id, c.trace_id, 1,
                   c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL,
                   c.cost_usd IS NOT NULL
            FROM _ru_top t JOIN {table} c
                 ON c.parent_id = t.span_id AND c.trace_id IS NOT DISTINCT FROM t.trace_id
            UNION ALL
            SELECT d.top, c.span_id, c.trace_id, d.depth + 1,
                   c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL,
                   c.cost_usd IS NOT NULL
            FROM down d JOIN {table} c
                 ON c.parent_id = d.span_id AND c.trace_id IS NOT DISTINCT FROM d.trace_id
            WHERE d.depth < {ROLLUP_DEPTH} AND c.span_id IS NOT NULL)
        SELECT top AS _ord, bool_or(tok) AS tok, bool_or(cost) AS cost FROM down GROUP BY top
    """)
    con.execute(f"""
        UPDATE {table} s SET
            attributes = json_merge_patch(s.attributes, json_object('forensics.usage_rollup',
                json_object('input_tokens', CASE WHEN r.tok THEN s.input_tokens END,
                            'output_tokens', CASE WHEN r.tok THEN s.output_tokens END,
                            'cost_usd', CASE WHEN r.cost THEN s.cost_usd END,
                            'note', 'sum of its descendants'' usage; not counted again')))::VARCHAR,
            input_tokens = CASE WHEN r.tok THEN NULL ELSE s.input_tokens END,
            output_tokens = CASE WHEN r.tok THEN NULL ELSE s.output_tokens END,
            cost_usd = CASE WHEN r.cost THEN NULL ELSE s.cost_usd END
        FROM _ru r
        WHERE s._ord = r._ord AND ((r.tok AND (s.input_tokens IS NOT NULL
                                               OR s.output_tokens IS NOT NULL))
                                   OR (r.cost AND s.cost_usd IS NOT NULL))
    """)
    con.execute("DROP TABLE _ru")
    con.execute("DROP TABLE _ru_top")


def _fill_raw(con: duckdb.DuckDBPyConnection, raw_sql: RawSql) -> None:
    """The source text of the staged rows that may be rejected."""
    already = ("UNION SELECT s._ord FROM _sx s SEMI JOIN events e ON e.event_id = s.event_id"
               if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events' "
                              "AND NOT temporary").fetchall()[0][0] else "")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _needs_raw AS
        SELECT _ord FROM _sx WHERE _reject IS NOT NULL OR ts IS NULL
        UNION
        SELECT _ord FROM _sx WHERE event_id IN (
            SELECT event_id FROM _sx WHERE event_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1)
        {already}
    """)
    if con.execute("SELECT EXISTS (SELECT 1 FROM _needs_raw)").fetchall()[0][0]:
        for query in raw_sql(con):
            con.execute(f"""
                UPDATE _sx SET _raw = left(r.raw::VARCHAR, {RAW_LIMIT})
                FROM ({query}) r WHERE _sx._ord = r._ord
            """)
    con.execute("DROP TABLE _needs_raw")


def _children(con: duckdb.DuckDBPyConnection) -> None:
    """Retrieved documents (OpenInference flattened or listed, GenAI JSON, a canonical
    ``retrievals`` list) and moderation results (span events named like moderation /
    guardrail, a canonical ``moderations`` list, guardrail spans)."""
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
            FROM _sx WHERE _docs_flat IS NOT NULL),
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
            FROM _sx WHERE _docs_flat IS NULL
                AND (_docs_list IS NOT NULL OR _docs_genai IS NOT NULL))
        SELECT _ord, d.rank::INTEGER AS rank, d.doc_id, d.score, d.content
        FROM (SELECT * FROM flat UNION ALL SELECT * FROM listed)
    """)
    fields = {f: (f"coalesce(json_extract(m, '$.attributes.\"{f}\"'), "
                  f"json_extract(m, '$.attributes.\"moderation.{f}\"'), "
                  f"json_extract(m, '$.attributes.\"guardrail.{f}\"'))")
              for f in MODERATION_FIELDS}
    guarded = " OR ".join(f"_g_{f} IS NOT NULL" for f in MODERATION_FIELDS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _stage_moderations AS
        WITH ev AS (
            SELECT _ord, unnest(_mods) AS m FROM _sx WHERE len(_mods) > 0),
        rows AS (
            SELECT _ord, {', '.join(f'{expr} AS {f}' for f, expr in fields.items())} FROM ev
            UNION ALL
            SELECT _ord, {', '.join(f'_g_{f}' for f in MODERATION_FIELDS)}
            FROM _sx WHERE {guarded})
        SELECT _ord, _fx_str(stage) AS stage, _fx_str(category) AS category,
               try_cast(_fx_str(flagged) AS BOOLEAN) AS flagged,
               try_cast(_fx_str(score) AS DOUBLE) AS score, _fx_str(action) AS action
        FROM rows
    """)

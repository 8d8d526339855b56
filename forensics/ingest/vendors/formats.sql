-- SQL macros shared by the vendor readers (forensics/formats). All TEMP: installed on the
-- loading connection by forensics.formats.common.install(), gone when it closes.
-- Statements are separated by a line holding only ';'.

-- JSON value -> text: a JSON string unquoted, anything else as JSON text, null as NULL.
CREATE OR REPLACE TEMP MACRO _fx_str(x) AS CASE json_type(x)
    WHEN 'VARCHAR' THEN x ->> '$' WHEN 'NULL' THEN NULL ELSE x::VARCHAR END
;
-- A JSON value that may hold JSON inside a string (double-encoded) -> the inner value.
CREATE OR REPLACE TEMP MACRO _fx_unq(x) AS CASE
    WHEN x IS NULL THEN NULL
    WHEN json_type(x) = 'VARCHAR' AND left(ltrim(x ->> '$'), 1) IN ('[', '{')
         AND json_valid(x ->> '$') THEN (x ->> '$')::JSON
    ELSE x END
;
-- Text that may be JSON -> JSON, else NULL.
CREATE OR REPLACE TEMP MACRO _fx_jtext(s) AS CASE
    WHEN left(ltrim(s), 1) IN ('[', '{') AND json_valid(s) THEN s::JSON END
;
-- A request payload in any shape (message list, chat request, Responses API request,
-- LangSmith inputs, plain text) -> its messages (JSON[]), or NULL.
CREATE OR REPLACE TEMP MACRO _fx_inlist(v) AS CASE json_type(v)
    WHEN 'ARRAY' THEN CASE WHEN json_type(v, '$[0]') = 'ARRAY' THEN json_extract(v, '$[0][*]')
                           ELSE json_extract(v, '$[*]') END
    WHEN 'VARCHAR' THEN [json_object('role', 'user', 'content', v ->> '$')]
    WHEN 'OBJECT' THEN CASE
        WHEN json_type(v, '$.messages') = 'ARRAY' THEN CASE
            WHEN json_type(v, '$.messages[0]') = 'ARRAY' THEN json_extract(v, '$.messages[0][*]')
            ELSE json_extract(v, '$.messages[*]') END
        WHEN json_type(v, '$.messages') = 'VARCHAR'
            THEN from_json(_fx_unq(json_extract(v, '$.messages')), '["JSON"]')
        WHEN json_type(v, '$.input') = 'ARRAY' THEN json_extract(v, '$.input[*]')
        WHEN json_type(v, '$.input') = 'VARCHAR'
            THEN [json_object('role', 'user', 'content', v ->> 'input')]
        WHEN json_type(v, '$.prompt') = 'VARCHAR'
            THEN [json_object('role', 'user', 'content', v ->> 'prompt')]
        WHEN json_type(v, '$.prompt') = 'ARRAY' THEN json_extract(v, '$.prompt[*]')
        WHEN json_exists(v, '$.role') OR json_exists(v, '$.parts') THEN [v]
        WHEN json_type(v, '$.question') = 'VARCHAR'
            THEN [json_object('role', 'user', 'content', v ->> 'question')]
        WHEN json_type(v, '$.query') = 'VARCHAR'
            THEN [json_object('role', 'user', 'content', v ->> 'query')]
        END
    END
;
-- A response payload in any shape (message list, chat completion, Responses API
-- response, Anthropic message, LangSmith outputs, plain text) -> its messages (JSON[]).
CREATE OR REPLACE TEMP MACRO _fx_outlist(v) AS CASE json_type(v)
    WHEN 'ARRAY' THEN json_extract(v, '$[*]')
    WHEN 'VARCHAR' THEN [json_object('role', 'assistant', 'content', v ->> '$')]
    WHEN 'OBJECT' THEN CASE
        WHEN json_type(v, '$.choices') = 'ARRAY' THEN json_extract(v, '$.choices[*]')
        WHEN json_type(v, '$.output') = 'ARRAY' THEN json_extract(v, '$.output[*]')
        WHEN json_type(v, '$.generations') = 'ARRAY' THEN CASE
            WHEN json_type(v, '$.generations[0]') = 'ARRAY'
                THEN json_extract(v, '$.generations[0][*]')
            ELSE json_extract(v, '$.generations[*]') END
        WHEN json_type(v, '$.messages') = 'ARRAY' THEN json_extract(v, '$.messages[*]')
        WHEN json_exists(v, '$.role') OR json_exists(v, '$.parts')
             OR json_exists(v, '$.content') OR json_exists(v, '$.text')
             OR json_type(v, '$.message') = 'OBJECT' THEN [v]
        WHEN json_type(v, '$.output') = 'VARCHAR'
            THEN [json_object('role', 'assistant', 'content', v ->> 'output')]
        WHEN json_type(v, '$.answer') = 'VARCHAR'
            THEN [json_object('role', 'assistant', 'content', v ->> 'answer')]
        END
    END
;
-- The role of one message in any dialect (OpenAI, GenAI parts, Anthropic, Responses API
-- items, OpenInference, LangChain serialised messages).
CREATE OR REPLACE TEMP MACRO _fx_role(m) AS lower(coalesce(
    m ->> 'role', m ->> '$."message.role"', m ->> '$.message.role',
    CASE m ->> 'type' WHEN 'function_call' THEN 'assistant'
                      WHEN 'function_call_output' THEN 'tool' WHEN 'human' THEN 'user'
                      WHEN 'ai' THEN 'assistant' WHEN 'system' THEN 'system'
                      WHEN 'tool' THEN 'tool' END,
    CASE coalesce(m ->> '$.kwargs.type', regexp_replace(m ->> '$.id[#-1]', 'Message(Chunk)?$', ''))
         WHEN 'human' THEN 'user' WHEN 'Human' THEN 'user' WHEN 'ai' THEN 'assistant'
         WHEN 'AI' THEN 'assistant' WHEN 'system' THEN 'system' WHEN 'System' THEN 'system'
         WHEN 'tool' THEN 'tool' WHEN 'Tool' THEN 'tool' END))
;
-- Text of a list of content parts (JSON[]); NULL when no part holds text.
CREATE OR REPLACE TEMP MACRO _fx_ptexts(parts) AS list_filter(
    list_transform(parts, lambda p: CASE
        WHEN json_type(p) = 'VARCHAR' THEN p ->> '$'
        WHEN coalesce(p ->> 'type', p ->> '$."message_content.type"', 'text')
             IN ('text', 'input_text', 'output_text')
            THEN coalesce(p ->> 'text', p ->> 'content', p ->> '$."message_content.text"')
        WHEN (p ->> 'type') = 'refusal' THEN p ->> 'refusal'
        WHEN (p ->> 'type') IN ('tool_call_response', 'tool_result', 'function_call_output')
            THEN _fx_str(coalesce(json_extract(p, 'response'), json_extract(p, 'content'),
                                  json_extract(p, 'output'), json_extract(p, 'result')))
        END),
    lambda t: t IS NOT NULL)
;
CREATE OR REPLACE TEMP MACRO _fx_joined(ts) AS CASE WHEN len(ts) > 0
    THEN array_to_string(ts, chr(10)) END
;
CREATE OR REPLACE TEMP MACRO _fx_ptext(parts) AS _fx_joined(_fx_ptexts(parts))
;
-- Text of one message.
CREATE OR REPLACE TEMP MACRO _fx_mtext(m) AS CASE
    WHEN json_type(m) = 'VARCHAR' THEN m ->> '$'
    WHEN json_type(json_extract(m, 'content')) = 'VARCHAR' THEN m ->> 'content'
    WHEN json_type(json_extract(m, 'content')) = 'ARRAY' THEN _fx_ptext(json_extract(m, '$.content[*]'))
    WHEN json_type(json_extract(m, 'parts')) = 'ARRAY' THEN _fx_ptext(json_extract(m, '$.parts[*]'))
    WHEN json_type(json_extract(m, '$."message.content"')) = 'VARCHAR' THEN m ->> '$."message.content"'
    WHEN json_type(json_extract(m, '$."message.contents"')) = 'ARRAY'
        THEN _fx_ptext(json_extract(m, '$."message.contents"[*]'))
    WHEN json_type(json_extract(m, '$.kwargs.content')) = 'VARCHAR' THEN m ->> '$.kwargs.content'
    WHEN json_type(json_extract(m, '$.kwargs.content')) = 'ARRAY'
        THEN _fx_ptext(json_extract(m, '$.kwargs.content[*]'))
    WHEN json_type(json_extract(m, '$.message.content')) = 'VARCHAR' THEN m ->> '$.message.content'
    WHEN json_type(json_extract(m, '$.message.content')) = 'ARRAY'
        THEN _fx_ptext(json_extract(m, '$.message.content[*]'))
    WHEN json_type(m, '$.message.refusal') = 'VARCHAR' THEN m ->> '$.message.refusal'
    WHEN json_type(m, '$.refusal') = 'VARCHAR' THEN m ->> 'refusal'
    WHEN (m ->> 'type') = 'function_call_output' THEN _fx_str(json_extract(m, 'output'))
    ELSE m ->> 'text' END
;
-- Tool calls of one message: list of {name, args}.
CREATE OR REPLACE TEMP MACRO _fx_mtools(m) AS list_concat(
    list_transform(json_extract(m, '$.tool_calls[*]'), lambda t: {
        'name': coalesce(t ->> '$.function.name', t ->> 'name'),
        'args': _fx_str(coalesce(json_extract(t, '$.function.arguments'), json_extract(t, 'arguments'), json_extract(t, 'args')))}),
    list_transform(list_filter(json_extract(m, '$.parts[*]'), lambda p: (p ->> 'type') = 'tool_call'),
        lambda p: {'name': p ->> 'name', 'args': _fx_str(json_extract(p, 'arguments'))}),
    list_transform(list_filter(json_extract(m, '$.content[*]'),
                               lambda p: (p ->> 'type') IN ('tool_use', 'tool-call', 'function_call')),
        lambda p: {'name': coalesce(p ->> 'name', p ->> 'toolName'),
                   'args': _fx_str(coalesce(json_extract(p, 'input'), json_extract(p, 'args'), json_extract(p, 'arguments')))}),
    list_transform(json_extract(m, '$."message.tool_calls"[*]'), lambda t: {
        'name': t ->> '$."tool_call.function.name"',
        'args': _fx_str(json_extract(t, '$."tool_call.function.arguments"'))}),
    list_transform(json_extract(m, '$.message.tool_calls[*]'), lambda t: {
        'name': t ->> '$.function.name', 'args': _fx_str(json_extract(t, '$.function.arguments'))}),
    list_transform(json_extract(m, '$.kwargs.tool_calls[*]'), lambda t: {
        'name': t ->> 'name', 'args': _fx_str(json_extract(t, 'args'))}),
    CASE WHEN (m ->> 'type') = 'function_call'
         THEN [{'name': m ->> 'name', 'args': _fx_str(json_extract(m, 'arguments'))}] ELSE [] END)
;
-- The first tool call asked for in a message list (JSON[]).
CREATE OR REPLACE TEMP MACRO _fx_tool(ms) AS flatten(list_transform(ms, lambda m: _fx_mtools(m)))[1]
;
-- Flattened messages (OpenInference llm.input_messages.N.message.*, Traceloop
-- gen_ai.prompt.N.*) of the attribute list a, under prefix p: entries {n, f, v}.
CREATE OR REPLACE TEMP MACRO _fx_flat_entries(a, p) AS list_transform(
    list_filter(a, lambda e: starts_with(e.k, p || '.')
                AND regexp_matches(e.k[len(p) + 2:], '^[0-9]+\.')),
    lambda e: {'n': split_part(e.k[len(p) + 2:], '.', 1)::INTEGER,
               'f': regexp_replace(regexp_replace(e.k[len(p) + 2:], '^[0-9]+\.(message\.)?', ''),
                                   '(tool_call\.|function\.|message_content\.)', '', 'g'),
               'v': e.v})
;
CREATE OR REPLACE TEMP MACRO _fx_flat_get(es, n, f) AS
    _fx_str(list_filter(es, lambda e: e.n = n AND e.f = f)[1].v)
;
CREATE OR REPLACE TEMP MACRO _fx_flat_msgs(es) AS CASE WHEN len(es) > 0 THEN list_transform(
    list_sort(list_distinct(list_transform(es, lambda e: e.n))),
    lambda n: to_json({
        'role': _fx_flat_get(es, n, 'role'),
        'content': coalesce(_fx_flat_get(es, n, 'content'), nullif(array_to_string(
            list_transform(list_sort(list_transform(
                list_filter(es, lambda e: e.n = n AND regexp_full_match(e.f, 'contents\.[0-9]+\.text')),
                lambda e: {'i': split_part(e.f, '.', 2)::INTEGER, 't': _fx_str(e.v)})),
                lambda x: x.t), chr(10)), '')),
        'tool_calls': list_transform(list_sort(list_distinct(list_transform(
                list_filter(es, lambda e: e.n = n AND starts_with(e.f, 'tool_calls.')),
                lambda e: split_part(e.f, '.', 2)::INTEGER))),
            lambda k: {'id': _fx_flat_get(es, n, 'tool_calls.' || k || '.id'),
                       'function': {'name': _fx_flat_get(es, n, 'tool_calls.' || k || '.name'),
                                    'arguments': _fx_flat_get(es, n, 'tool_calls.' || k || '.arguments')}}),
        'tool_call_id': _fx_flat_get(es, n, 'tool_call_id'),
        'finish_reason': _fx_flat_get(es, n, 'finish_reason')})) END
;
-- Flattened messages are plain when every field is role or content.
CREATE OR REPLACE TEMP MACRO _fx_flat_plain(es, roles) AS len(es) > 0
    AND list_bool_and(list_transform(es, lambda e: e.f IN ('role', 'content')))
    AND len(list_filter(es, lambda e: e.f = 'role')) = len(list_distinct(list_transform(es, lambda e: e.n)))
    AND list_bool_and(list_transform(list_filter(es, lambda e: e.f = 'role'),
                                     lambda e: list_contains(roles, lower(_fx_str(e.v)))))
    AND len(list_distinct(list_transform(list_filter(es, lambda e: e.f = 'role'),
                                         lambda e: lower(_fx_str(e.v)))))
        = len(list_filter(es, lambda e: e.f = 'role'))
;
-- Unix nanoseconds (number or decimal text) -> TIMESTAMP; 0 means unset.
CREATE OR REPLACE TEMP MACRO _fx_nanos(s) AS CASE
    WHEN try_cast(s AS HUGEINT) > 0 THEN make_timestamp((try_cast(s AS HUGEINT) // 1000)::BIGINT) END
;
-- A trace or span id: hex (any case, optional 0x) -> lower hex; base64 of 8 or 16 bytes
-- -> lower hex; anything else kept as it is; empty or all zeros -> NULL.
CREATE OR REPLACE TEMP MACRO _fx_id(s) AS CASE
    WHEN s IS NULL OR trim(s) = '' OR regexp_full_match(s, '(0x)?0+') THEN NULL
    WHEN regexp_full_match(s, '(0x)?[0-9a-fA-F]{16}|(0x)?[0-9a-fA-F]{32}')
        THEN lower(regexp_replace(s, '^0x', ''))
    WHEN regexp_full_match(s, '[A-Za-z0-9+/]{11}=|[A-Za-z0-9+/]{22}==')
        THEN coalesce(lower(hex(try(from_base64(s)))), s)
    ELSE s END
;
-- OTLP AnyValue (JSON) -> plain JSON. Scalars only: containers come back unchanged.
CREATE OR REPLACE TEMP MACRO _fx_any0(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN json_exists(v, '$.stringValue') THEN json_extract(v, '$.stringValue')
    WHEN json_exists(v, '$.intValue') THEN coalesce(
        try_cast(v ->> 'intValue' AS HUGEINT)::VARCHAR::JSON, json_extract(v, '$.intValue'))
    WHEN json_exists(v, '$.doubleValue') THEN CASE
        WHEN isfinite(try_cast(v ->> 'doubleValue' AS DOUBLE))
            THEN to_json(try_cast(v ->> 'doubleValue' AS DOUBLE))
        ELSE json_extract(v, '$.doubleValue') END
    WHEN json_exists(v, '$.boolValue') THEN to_json(try_cast(v ->> 'boolValue' AS BOOLEAN))
    WHEN json_exists(v, '$.bytesValue') THEN json_extract(v, '$.bytesValue')
    WHEN v::VARCHAR = '{}' THEN 'null'::JSON
    ELSE v END
;
-- One level of arrayValue / kvlistValue (given as the JSON inside it) with scalar members;
-- deeper containers are left as AnyValue JSON (see forensics.formats.otlp.deep_values).
CREATE OR REPLACE TEMP MACRO _fx_anyarr(x) AS to_json(list_transform(
    json_extract(x, '$.values[*]'), lambda e: _fx_any0(e)))
;
CREATE OR REPLACE TEMP MACRO _fx_anykv(x) AS ('{' || array_to_string(list_transform(
    json_extract(x, '$.values[*]'), lambda e: to_json(e ->> 'key')::VARCHAR || ':'
        || coalesce(_fx_any0(json_extract(e, '$.value')), 'null'::JSON)::VARCHAR), ',') || '}')::JSON
;
-- OTLP AnyValue parsed as a struct (see forensics.formats.otlp.ANY) -> plain JSON.
CREATE OR REPLACE TEMP MACRO _fx_anys(v) AS CASE
    WHEN v.stringValue IS NOT NULL THEN to_json(v.stringValue)
    WHEN v.intValue IS NOT NULL THEN coalesce(try_cast(v.intValue AS HUGEINT)::VARCHAR::JSON,
                                              to_json(v.intValue))
    WHEN v.boolValue IS NOT NULL THEN to_json(try_cast(v.boolValue AS BOOLEAN))
    WHEN v.doubleValue IS NOT NULL THEN CASE
        WHEN isfinite(try_cast(v.doubleValue AS DOUBLE))
            THEN to_json(try_cast(v.doubleValue AS DOUBLE)) ELSE to_json(v.doubleValue) END
    WHEN v.arrayValue IS NOT NULL THEN _fx_anyarr(v.arrayValue)
    WHEN v.kvlistValue IS NOT NULL THEN _fx_anykv(v.kvlistValue)
    WHEN v.bytesValue IS NOT NULL THEN to_json(v.bytesValue)
    ELSE 'null'::JSON END
;
-- OTLP attribute list (list of {key, value}) -> an attribute list (see below).
CREATE OR REPLACE TEMP MACRO _fx_attrs(kvs) AS coalesce(list_transform(kvs,
    lambda e: {'k': e.key, 'v': _fx_anys(e.value)}), [])
;
-- Our span kinds from the words producers use.
CREATE OR REPLACE TEMP MACRO _fx_kind(s) AS coalesce(MAP {
    'chat': 'llm', 'text_completion': 'llm', 'generate_content': 'llm', 'completion': 'llm',
    'generation': 'llm', 'llm': 'llm', 'responses': 'llm', 'chat_completion': 'llm',
    'embeddings': 'embedding', 'embedding': 'embedding',
    'execute_tool': 'tool', 'tool': 'tool', 'function': 'tool',
    'invoke_agent': 'agent', 'create_agent': 'agent', 'agent': 'agent',
    'invoke_workflow': 'chain', 'workflow': 'chain', 'chain': 'chain', 'task': 'chain',
    'retrieval': 'retriever', 'retriever': 'retriever', 'reranker': 'reranker',
    'rerank': 'reranker', 'guardrail': 'guardrail', 'moderation': 'guardrail',
    'evaluator': 'evaluator', 'prompt': 'prompt', 'parser': 'parser', 'span': 'span',
    'event': 'event', 'trace': 'trace'}[lower(s)], lower(s))
;
-- OTel status code (number, STATUS_CODE_X, X, or SDK "StatusCode.X") -> ok / error / unset.
CREATE OR REPLACE TEMP MACRO _fx_status(s) AS MAP {
    '0': 'unset', 'UNSET': 'unset', '1': 'ok', 'OK': 'ok', '2': 'error', 'ERROR': 'error'}[
    regexp_replace(upper(trim(s::VARCHAR)), '^(STATUS_CODE_|STATUSCODE\.)', '')]
;
-- OTel span kind (number, SPAN_KIND_X, SDK "SpanKind.X") -> internal / server / client / ...
CREATE OR REPLACE TEMP MACRO _fx_spankind(s) AS MAP {
    '1': 'internal', '2': 'server', '3': 'client', '4': 'producer', '5': 'consumer',
    'INTERNAL': 'internal', 'SERVER': 'server', 'CLIENT': 'client', 'PRODUCER': 'producer',
    'CONSUMER': 'consumer'}[regexp_replace(upper(trim(s::VARCHAR)), '^(SPAN_KIND_|SPANKIND\.)', '')]
;
-- Attribute lists: LIST(STRUCT(k VARCHAR, v JSON)), cheaper to build than a MAP.
CREATE OR REPLACE TEMP MACRO _fx_kvzip(ks, vs) AS list_filter(
    list_transform(range(1, len(ks) + 1), lambda i: {'k': ks[i], 'v': vs[i]}),
    lambda e: e.v IS NOT NULL AND e.v::VARCHAR <> 'null')
;
-- A JSON object -> an attribute list (members with null values left out).
CREATE OR REPLACE TEMP MACRO _fx_kvobj(o) AS CASE WHEN json_type(o) = 'OBJECT'
    THEN _fx_kvzip(json_keys(o), json_extract(o, '$.*'))
    ELSE []::STRUCT(k VARCHAR, v JSON)[] END
;
-- An attribute list -> a JSON object.
CREATE OR REPLACE TEMP MACRO _fx_kvjson(l) AS ('{' || array_to_string(list_transform(
    list_filter(l, lambda e: e.v IS NOT NULL),
    lambda e: to_json(e.k)::VARCHAR || ':' || e.v::VARCHAR), ',') || '}')::JSON
;
-- Entries of an attribute list built from (key, value) pairs, null values left out.
CREATE OR REPLACE TEMP MACRO _fx_kvs(l) AS list_filter(l,
    lambda e: e.v IS NOT NULL AND json_type(e.v) <> 'NULL')
;
-- The value of key k in an attribute list (the first, if it repeats).
CREATE OR REPLACE TEMP MACRO _fx_kv(l, key) AS list_filter(l, lambda e: e.k = key)[1].v
;
-- A record's ordinal from its position: line, then resource, scope and item indexes
-- (kind 0 spans, 1 log records), packed so that it sorts in file order.
CREATE OR REPLACE TEMP MACRO _fx_ord(line, ri, si, i, kind) AS
    (line::HUGEINT << 66) + (kind::HUGEINT << 65) + (ri::HUGEINT << 44)
    + (si::HUGEINT << 23) + i::HUGEINT
;
-- A JSON object without the given members.
CREATE OR REPLACE TEMP MACRO _fx_drop(o, ks) AS _fx_kvjson(list_filter(_fx_kvobj(o),
    lambda e: NOT list_contains(ks, e.k)))
;
-- A JSON object with members set (an attribute list of replacements).
CREATE OR REPLACE TEMP MACRO _fx_set(o, l) AS _fx_kvjson(list_concat(
    list_filter(_fx_kvobj(o), lambda e: NOT list_contains(list_transform(l, lambda x: x.k), e.k)),
    _fx_kvs(l)))
;
-- Text that is itself a JSON string literal (double-encoded) -> the string.
CREATE OR REPLACE TEMP MACRO _fx_dequote(s) AS CASE
    WHEN left(s, 1) = '"' AND right(s, 1) = '"' AND json_valid(s) THEN s::JSON ->> '$'
    ELSE s END
;
;
-- A provider's finish word -> the canonical one (see _fx_finish).
CREATE OR REPLACE TEMP MACRO _fx_finish_word(w) AS CASE
    WHEN w IS NULL OR trim(w) = '' THEN NULL
    ELSE coalesce(MAP {
        'stop': 'stop', 'end_turn': 'stop', 'stop_sequence': 'stop', 'complete': 'stop',
        'completed': 'stop', 'eos': 'stop', 'eos_token': 'stop', 'finish': 'stop',
        'finish_reason_stop': 'stop', 'pause_turn': 'stop',
        'length': 'length', 'max_tokens': 'length', 'max_output_tokens': 'length',
        'model_length': 'length', 'model_context_window_exceeded': 'length',
        'token_limit': 'length', 'finish_reason_max_tokens': 'length',
        'tool_calls': 'tool_calls', 'tool_call': 'tool_calls', 'tool_use': 'tool_calls',
        'function_call': 'tool_calls', 'tool-calls': 'tool_calls',
        'content_filter': 'content_filter', 'content_filtered': 'content_filter',
        'content-filter': 'content_filter', 'safety': 'content_filter',
        'recitation': 'content_filter', 'blocklist': 'content_filter',
        'prohibited_content': 'content_filter', 'spii': 'content_filter',
        'image_safety': 'content_filter', 'refusal': 'content_filter',
        'guardrail_intervened': 'content_filter', 'error_toxic': 'content_filter',
        'error': 'error', 'malformed_function_call': 'error', 'error_limit': 'length',
        'unexpected_tool_call': 'error'
    }[lower(trim(w))], lower(trim(w))) END
;
-- One finish-reason vocabulary across providers (OpenAI's words): stop, length,
-- tool_calls, content_filter, error. A JSON list (or its text) gives its first element;
-- a word no provider table lists is kept, lower-cased.
CREATE OR REPLACE TEMP MACRO _fx_finish(s) AS CASE
    WHEN s IS NULL OR trim(s) = '' THEN NULL
    WHEN left(ltrim(s), 1) = '[' AND json_valid(s)
        THEN _fx_finish_word(json_extract_string(s, '$[0]'))
    ELSE _fx_finish_word(s) END
;

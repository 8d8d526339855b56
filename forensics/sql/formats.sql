-- SQL macros shared by the vendor readers (forensics/formats). All TEMP: installed on the
-- loading connection by forensics.formats.common.install(), gone when it closes.
-- Statements are separated by a line holding only ';'.

-- JSON value -> text: a JSON string unquoted, anything else as JSON text, null as NULL.
CREATE OR REPLACE TEMP MACRO _fx_str(x) AS CASE
    WHEN x IS NULL OR json_type(x) = 'NULL' THEN NULL
    WHEN json_type(x) = 'VARCHAR' THEN x ->> '$'
    ELSE x::VARCHAR END
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
CREATE OR REPLACE TEMP MACRO _fx_msgs_in(x) AS _fx_inlist(_fx_unq(x))
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
             OR json_exists(v, '$.content') OR json_exists(v, '$.text') THEN [v]
        WHEN json_type(v, '$.output') = 'VARCHAR'
            THEN [json_object('role', 'assistant', 'content', v ->> 'output')]
        WHEN json_type(v, '$.answer') = 'VARCHAR'
            THEN [json_object('role', 'assistant', 'content', v ->> 'answer')]
        END
    END
;
CREATE OR REPLACE TEMP MACRO _fx_msgs_out(x) AS _fx_outlist(_fx_unq(x))
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
-- Text of a list of content parts (JSON[]).
CREATE OR REPLACE TEMP MACRO _fx_ptext(parts) AS nullif(array_to_string(list_filter(
    list_transform(parts, lambda p: CASE
        WHEN json_type(p) = 'VARCHAR' THEN p ->> '$'
        WHEN coalesce(p ->> 'type', p ->> '$."message_content.type"', 'text')
             IN ('text', 'input_text', 'output_text')
            THEN coalesce(p ->> 'text', p ->> 'content', p ->> '$."message_content.text"')
        WHEN (p ->> 'type') = 'refusal' THEN p ->> 'refusal'
        WHEN (p ->> 'type') IN ('tool_call_response', 'tool_result', 'function_call_output')
            THEN _fx_str(coalesce(json_extract(p, 'response'), json_extract(p, 'content'), json_extract(p, 'output'), json_extract(p, 'result')))
        END),
    lambda t: t IS NOT NULL), chr(10)), '')
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
-- Over a message list (JSON[]): system text, the input (last user turn, else the last
-- non-system message), the output (all messages' text), the first tool call.
CREATE OR REPLACE TEMP MACRO _fx_system(ms) AS nullif(array_to_string(list_transform(
    list_filter(ms, lambda m: _fx_role(m) IN ('system', 'developer')),
    lambda m: _fx_mtext(m)), chr(10)), '')
;
CREATE OR REPLACE TEMP MACRO _fx_input(ms) AS coalesce(
    _fx_mtext(list_filter(ms, lambda m: _fx_role(m) IN ('user', 'human'))[-1]),
    _fx_mtext(list_filter(ms, lambda m: coalesce(_fx_role(m), '') NOT IN ('system', 'developer'))[-1]))
;
CREATE OR REPLACE TEMP MACRO _fx_output(ms) AS nullif(array_to_string(list_filter(
    list_transform(ms, lambda m: _fx_mtext(m)), lambda t: t IS NOT NULL), chr(10)), '')
;
CREATE OR REPLACE TEMP MACRO _fx_tool(ms) AS flatten(list_transform(ms, lambda m: _fx_mtools(m)))[1]
;
-- A message list is "plain" when system_prompt / input_text / output_text say all of it:
-- text-only messages, at most one per role, roles from the given list.
CREATE OR REPLACE TEMP MACRO _fx_plain(ms, roles) AS ms IS NOT NULL AND len(ms) > 0
    AND len(list_distinct(list_transform(ms, lambda m: _fx_role(m)))) = len(ms)
    AND list_bool_and(list_transform(ms, lambda m:
        json_type(m) = 'OBJECT'
        AND list_contains(roles, _fx_role(m))
        AND list_bool_and(list_transform(json_keys(m), lambda k:
                k IN ('role', 'content', 'parts', 'finish_reason')))
        AND coalesce(json_type(json_extract(m, 'content')), 'VARCHAR') IN ('VARCHAR', 'NULL')
        AND coalesce(list_bool_and(list_transform(json_extract(m, '$.parts[*]'), lambda p:
                (p ->> 'type') = 'text'
                AND list_bool_and(list_transform(json_keys(p), lambda k: k IN ('type', 'content'))))),
            true)))
;
-- Flattened messages (OpenInference llm.input_messages.N.message.*, Traceloop
-- gen_ai.prompt.N.*) of the attribute map a, under prefix p -> JSON[] in OpenAI shape.
CREATE OR REPLACE TEMP MACRO _fx_flat_entries(a, p) AS list_transform(
    list_filter(map_entries(a), lambda e: starts_with(e.key, p || '.')
                AND regexp_matches(e.key[len(p) + 2:], '^[0-9]+\.')),
    lambda e: {'n': split_part(e.key[len(p) + 2:], '.', 1)::INTEGER,
               'f': regexp_replace(regexp_replace(e.key[len(p) + 2:], '^[0-9]+\.(message\.)?', ''),
                                   '(tool_call\.|function\.|message_content\.)', '', 'g'),
               'v': e.value})
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
-- OTLP AnyValue (JSON) -> plain JSON, nested arrays / kvlists unwrapped four levels deep
-- (deeper values keep their AnyValue form).
CREATE OR REPLACE TEMP MACRO _fx_any0(v) AS CASE
    WHEN v IS NULL THEN NULL
    WHEN (json_extract(v, 'stringValue')) IS NOT NULL THEN json_extract(v, 'stringValue')
    WHEN (json_extract(v, 'intValue')) IS NOT NULL THEN coalesce(
        try_cast(v ->> 'intValue' AS HUGEINT)::VARCHAR::JSON, json_extract(v, 'intValue'))
    WHEN (json_extract(v, 'doubleValue')) IS NOT NULL THEN CASE
        WHEN isfinite(try_cast(v ->> 'doubleValue' AS DOUBLE))
            THEN to_json(try_cast(v ->> 'doubleValue' AS DOUBLE)) ELSE json_extract(v, 'doubleValue') END
    WHEN (json_extract(v, 'boolValue')) IS NOT NULL THEN to_json(try_cast(v ->> 'boolValue' AS BOOLEAN))
    WHEN (json_extract(v, 'bytesValue')) IS NOT NULL THEN json_extract(v, 'bytesValue')
    WHEN v = '{}' THEN 'null'::JSON
    ELSE v END
;
CREATE OR REPLACE TEMP MACRO _fx_any1(v) AS CASE
    WHEN (json_extract(v, 'arrayValue')) IS NOT NULL THEN to_json(list_transform(
        json_extract(v, '$.arrayValue.values[*]'), lambda x: _fx_any0(x)))
    WHEN (json_extract(v, 'kvlistValue')) IS NOT NULL THEN ('{' || array_to_string(list_transform(
        json_extract(v, '$.kvlistValue.values[*]'), lambda e: to_json(e ->> 'key')::VARCHAR || ':'
        || coalesce(_fx_any0(json_extract(e, 'value')), 'null'::JSON)::VARCHAR), ',') || '}')::JSON
    ELSE _fx_any0(v) END
;
CREATE OR REPLACE TEMP MACRO _fx_any2(v) AS CASE
    WHEN (json_extract(v, 'arrayValue')) IS NOT NULL THEN to_json(list_transform(
        json_extract(v, '$.arrayValue.values[*]'), lambda x: _fx_any1(x)))
    WHEN (json_extract(v, 'kvlistValue')) IS NOT NULL THEN ('{' || array_to_string(list_transform(
        json_extract(v, '$.kvlistValue.values[*]'), lambda e: to_json(e ->> 'key')::VARCHAR || ':'
        || coalesce(_fx_any1(json_extract(e, 'value')), 'null'::JSON)::VARCHAR), ',') || '}')::JSON
    ELSE _fx_any0(v) END
;
CREATE OR REPLACE TEMP MACRO _fx_any3(v) AS CASE
    WHEN (json_extract(v, 'arrayValue')) IS NOT NULL THEN to_json(list_transform(
        json_extract(v, '$.arrayValue.values[*]'), lambda x: _fx_any2(x)))
    WHEN (json_extract(v, 'kvlistValue')) IS NOT NULL THEN ('{' || array_to_string(list_transform(
        json_extract(v, '$.kvlistValue.values[*]'), lambda e: to_json(e ->> 'key')::VARCHAR || ':'
        || coalesce(_fx_any2(json_extract(e, 'value')), 'null'::JSON)::VARCHAR), ',') || '}')::JSON
    ELSE _fx_any0(v) END
;
CREATE OR REPLACE TEMP MACRO _fx_any(v) AS CASE
    WHEN (json_extract(v, 'arrayValue')) IS NOT NULL THEN to_json(list_transform(
        json_extract(v, '$.arrayValue.values[*]'), lambda x: _fx_any3(x)))
    WHEN (json_extract(v, 'kvlistValue')) IS NOT NULL THEN ('{' || array_to_string(list_transform(
        json_extract(v, '$.kvlistValue.values[*]'), lambda e: to_json(e ->> 'key')::VARCHAR || ':'
        || coalesce(_fx_any3(json_extract(e, 'value')), 'null'::JSON)::VARCHAR), ',') || '}')::JSON
    ELSE _fx_any0(v) END
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
    WHEN v.arrayValue IS NOT NULL THEN _fx_any(json_object('arrayValue', v.arrayValue))
    WHEN v.kvlistValue IS NOT NULL THEN _fx_any(json_object('kvlistValue', v.kvlistValue))
    WHEN v.bytesValue IS NOT NULL THEN to_json(v.bytesValue)
    ELSE 'null'::JSON END
;
-- OTLP attribute list (list of {key, value}) -> MAP(VARCHAR, JSON); NULL when a key is
-- missing or repeats (the record is then rejected: OTLP attribute keys are unique).
CREATE OR REPLACE TEMP MACRO _fx_attrs(kvs) AS CASE
    WHEN kvs IS NULL OR len(kvs) = 0 THEN MAP {}::MAP(VARCHAR, JSON)
    WHEN len(list_distinct(list_transform(kvs, lambda e: e.key))) = len(kvs)
         AND list_bool_and(list_transform(kvs, lambda e: e.key IS NOT NULL))
        THEN map_from_entries(list_transform(kvs, lambda e: {'k': e.key, 'v': _fx_anys(e.value)}))
    END
;
-- A JSON object of attributes -> MAP(VARCHAR, JSON) (NULL for repeated keys).
CREATE OR REPLACE TEMP MACRO _fx_objmap(o) AS CASE
    WHEN o IS NULL OR json_type(o) <> 'OBJECT' THEN MAP {}::MAP(VARCHAR, JSON)
    ELSE from_json(o, '"MAP(VARCHAR, JSON)"') END
;
-- MAP(VARCHAR, JSON) -> JSON object (NULL values dropped).
CREATE OR REPLACE TEMP MACRO _fx_mapjson(m) AS
    ('{' || array_to_string(list_transform(list_filter(map_entries(m), lambda e: e.value IS NOT NULL),
        lambda e: to_json(e.key)::VARCHAR || ':' || e.value::VARCHAR), ',') || '}')::JSON
;
-- Our span kinds from the words producers use.
CREATE OR REPLACE TEMP MACRO _fx_kind(s) AS CASE lower(s)
    WHEN 'chat' THEN 'llm' WHEN 'text_completion' THEN 'llm' WHEN 'generate_content' THEN 'llm'
    WHEN 'completion' THEN 'llm' WHEN 'generation' THEN 'llm' WHEN 'llm' THEN 'llm'
    WHEN 'responses' THEN 'llm' WHEN 'chat_completion' THEN 'llm'
    WHEN 'embeddings' THEN 'embedding' WHEN 'embedding' THEN 'embedding'
    WHEN 'execute_tool' THEN 'tool' WHEN 'tool' THEN 'tool' WHEN 'function' THEN 'tool'
    WHEN 'invoke_agent' THEN 'agent' WHEN 'create_agent' THEN 'agent' WHEN 'agent' THEN 'agent'
    WHEN 'invoke_workflow' THEN 'chain' WHEN 'workflow' THEN 'chain' WHEN 'chain' THEN 'chain'
    WHEN 'task' THEN 'chain'
    WHEN 'retrieval' THEN 'retriever' WHEN 'retriever' THEN 'retriever'
    WHEN 'reranker' THEN 'reranker' WHEN 'rerank' THEN 'reranker'
    WHEN 'guardrail' THEN 'guardrail' WHEN 'moderation' THEN 'guardrail'
    WHEN 'evaluator' THEN 'evaluator' WHEN 'prompt' THEN 'prompt' WHEN 'parser' THEN 'parser'
    WHEN 'span' THEN 'span' WHEN 'event' THEN 'event' WHEN 'trace' THEN 'trace'
    ELSE lower(s) END
;
-- OTel status code (number, STATUS_CODE_X, X, or SDK "StatusCode.X") -> ok / error / unset.
CREATE OR REPLACE TEMP MACRO _fx_status(s) AS CASE
    regexp_replace(upper(trim(s::VARCHAR)), '^(STATUS_CODE_|STATUSCODE\.)', '')
    WHEN '0' THEN 'unset' WHEN 'UNSET' THEN 'unset' WHEN '1' THEN 'ok' WHEN 'OK' THEN 'ok'
    WHEN '2' THEN 'error' WHEN 'ERROR' THEN 'error' END
;
-- OTel span kind (number, SPAN_KIND_X, SDK "SpanKind.X") -> internal / server / client / ...
CREATE OR REPLACE TEMP MACRO _fx_spankind(s) AS CASE
    regexp_replace(upper(trim(s::VARCHAR)), '^(SPAN_KIND_|SPANKIND\.)', '')
    WHEN '1' THEN 'internal' WHEN '2' THEN 'server' WHEN '3' THEN 'client'
    WHEN '4' THEN 'producer' WHEN '5' THEN 'consumer' WHEN '0' THEN NULL
    WHEN 'UNSPECIFIED' THEN NULL ELSE lower(regexp_replace(upper(trim(s::VARCHAR)),
                                                           '^(SPAN_KIND_|SPANKIND\.)', '')) END
;
-- A JSON object's members as map entries with their keys prefixed (MAP(VARCHAR, JSON)).
CREATE OR REPLACE TEMP MACRO _fx_prefixed(o, p) AS map_from_entries(list_transform(
    map_entries(_fx_objmap(o)), lambda e: {'key': p || e.key, 'value': e.value}))
;
-- Map entries from a list of {key, value}, leaving out missing and null values.
CREATE OR REPLACE TEMP MACRO _fx_entries(l) AS map_from_entries(list_filter(l,
    lambda e: e.value IS NOT NULL AND json_type(e.value) <> 'NULL'))
;
-- A JSON object without the given members (null-valued members elsewhere are kept, unlike
-- json_merge_patch).
CREATE OR REPLACE TEMP MACRO _fx_drop(o, ks) AS coalesce(
    _fx_mapjson(map_from_entries(list_filter(map_entries(_fx_objmap(o)),
                                             lambda e: NOT list_contains(ks, e.key)))),
    json_merge_patch(o, ('{' || array_to_string(list_transform(ks,
        lambda k: to_json(k)::VARCHAR || ':null'), ',') || '}')::JSON))
;
-- A JSON object with members set (a MAP(VARCHAR, JSON) of replacements; SQL NULL values
-- are skipped), keeping null-valued members.
CREATE OR REPLACE TEMP MACRO _fx_set(o, m) AS _fx_mapjson(map_concat(_fx_objmap(o),
    map_from_entries(list_filter(map_entries(m), lambda e: e.value IS NOT NULL))))
;

-- Canonical views every stage and saved query builds on. Re-created each time a case is
-- opened for writing, so they follow the library version.

-- The label vocabulary: every label the detectors write, and the reviewer
-- verdicts the toolkit understands, with the seed playbook's category, the detector family
-- (labels one detector group writes: refusal, data_leak, incomplete, failure, malformed,
-- wrong_language, harmful, feedback, ungrounded, unauthorized_action) and whether the label
-- means a bad output. Informational labels (bad = false, e.g. the detected output language,
-- a reviewer's "ok") never make an event bad. A label not listed here counts as bad.
CREATE OR REPLACE VIEW failure_categories AS
SELECT * FROM (VALUES
    ('harmful_output', 'harmful output', 'illegal advice, hate, dangerous instructions, toxic text'),
    ('data_leak', 'data leak', 'private data, secrets or system instructions in an output'),
    ('misinformation', 'misinformation', 'made-up or unsupported facts'),
    ('unauthorized_action', 'unauthorized action', 'an agent action the policy did not allow'),
    ('degradation', 'degradation', 'quality dropped: truncated, malformed, wrong language, ...'),
    ('capability_loss', 'capability loss / refusal', 'refusing legitimate requests, errors, outages')
) AS c(category, title, description);

CREATE OR REPLACE VIEW label_vocabulary AS
SELECT * FROM (VALUES
    ('refusal', 'capability_loss', 'refusal', true, 'rule', 'the output declines the request'),
    ('over_refusal', 'capability_loss', 'refusal', true, 'rule', 'a refusal of a request shown to be benign'),
    ('pii_leak', 'data_leak', 'data_leak', true, 'rule', 'personal data (e-mail, phone, card, id, IBAN, address) in the output'),
    ('secret_leak', 'data_leak', 'data_leak', true, 'rule', 'API key, private key, credential or requested secret in the output'),
    ('system_prompt_leak', 'data_leak', 'data_leak', true, 'rule', 'the output repeats the system prompt or a secret in it'),
    ('truncated', 'degradation', 'incomplete', true, 'rule', 'output cut off (finish reason length, max tokens, mid-sentence)'),
    ('empty_output', 'degradation', 'incomplete', true, 'rule', 'a successful call with no output'),
    ('error', 'capability_loss', 'failure', true, 'rule', 'the call failed (status or error text)'),
    ('timeout', 'capability_loss', 'failure', true, 'rule', 'the call timed out'),
    ('malformed_json', 'degradation', 'malformed', true, 'rule', 'JSON expected, invalid or off-schema output'),
    ('tool_call_error', 'degradation', 'malformed', true, 'rule', 'unknown tool, bad arguments or unparseable tool call'),
    ('unauthorized_action', 'unauthorized_action', 'unauthorized_action', true, 'rule', 'a tool ran although policy denied it or did not allow the tool'),
    ('wrong_language', 'degradation', 'wrong_language', true, 'rule', 'the output language differs from the requested / input language'),
    ('moderation_flag', 'harmful_output', 'harmful', true, 'rule', 'a moderation or guardrail decision flagged the output'),
    ('negative_feedback', 'degradation', 'feedback', true, 'rule', 'negative user or reviewer feedback'),
    ('ungrounded', 'misinformation', 'ungrounded', true, 'rule', 'the answer is poorly supported by its retrieved context'),
    ('hallucination', 'misinformation', 'ungrounded', true, 'reviewer', 'a reviewer found made-up facts'),
    ('harmful_content', 'harmful_output', 'harmful', true, 'reviewer', 'a reviewer found harmful content'),
    ('policy_violation', 'harmful_output', 'harmful', true, 'reviewer', 'a reviewer found a policy violation'),
    ('confirmed', NULL, NULL, true, 'reviewer', 'a reviewer confirmed the flagged event is bad'),
    ('bad', NULL, NULL, true, 'reviewer', 'a reviewer judged the output bad'),
    ('output_language', NULL, NULL, false, 'rule', 'informational: detected output language (detail.lang)'),
    ('new_tool_action', 'unauthorized_action', 'unauthorized_action', false, 'rule', 'informational: a tool not called before'),
    ('ok', NULL, NULL, false, 'reviewer', 'a reviewer judged the output fine'),
    ('good', NULL, NULL, false, 'reviewer', 'a reviewer judged the output fine'),
    ('pass', NULL, NULL, false, 'reviewer', 'a reviewer judged the output fine'),
    ('not_bad', NULL, NULL, false, 'reviewer', 'a reviewer judged the output fine'),
    ('rejected', NULL, NULL, false, 'reviewer', 'a reviewer rejected the flag (not bad)'),
    ('false_positive', NULL, NULL, false, 'reviewer', 'a reviewer found the detector wrong')
) AS v(label, category, family, bad, written_by, meaning);

-- One row per event with the cohort keys pulled out of attributes and the bad signals:
-- a label that means a bad output, an error, a flagged moderation, negative feedback.
-- labels: the labels that mean a bad output; info_labels: informational ones;
-- output_language: the language the detectors identified in the output.
CREATE OR REPLACE VIEW event_facts AS
WITH lab AS (
    SELECT l.event_id,
           list(DISTINCT l.label ORDER BY l.label) FILTER (WHERE coalesce(v.bad, true)) AS labels,
           list(DISTINCT l.label ORDER BY l.label) FILTER (WHERE NOT coalesce(v.bad, true))
               AS info_labels,
           any_value(CASE WHEN l.label = 'output_language' AND json_valid(l.detail)
                          THEN json_extract_string(l.detail, '$.lang') END) AS output_language
    FROM labels l LEFT JOIN label_vocabulary v ON v.label = l.label
    GROUP BY l.event_id
), flag AS (
    SELECT event_id, list(DISTINCT category ORDER BY category) AS flagged_categories
    FROM moderations WHERE flagged GROUP BY event_id
), fb_event AS (
    SELECT event_id, bool_or(negative) AS negative FROM feedback
    WHERE event_id IS NOT NULL GROUP BY event_id
), fb_trace AS (
    SELECT trace_id, bool_or(negative) AS negative FROM feedback
    WHERE trace_id IS NOT NULL AND event_id IS NULL GROUP BY trace_id
)
SELECT e.*,
    e.attributes ->> 'plan'           AS plan,
    e.attributes ->> 'locale'         AS locale,
    e.attributes ->> 'region'         AS region,
    e.attributes ->> 'tenant'         AS tenant,
    e.attributes ->> 'client_version' AS client_version,
    coalesce(lab.labels, [])          AS labels,
    coalesce(lab.info_labels, [])     AS info_labels,
    lab.output_language               AS output_language,
    coalesce(flag.flagged_categories, []) AS flagged_categories,
    e.status = 'error'                AS is_error,
    flag.event_id IS NOT NULL         AS is_flagged,
    coalesce(fb_event.negative, fb_trace.negative, false) AS negative_feedback,
    len(coalesce(lab.labels, [])) > 0
        OR coalesce(e.status = 'error', false)
        OR flag.event_id IS NOT NULL
        OR coalesce(fb_event.negative, fb_trace.negative, false) AS is_bad
FROM events e
LEFT JOIN lab ON lab.event_id = e.event_id
LEFT JOIN flag ON flag.event_id = e.event_id
LEFT JOIN fb_event ON fb_event.event_id = e.event_id
LEFT JOIN fb_trace ON fb_trace.trace_id = e.trace_id;

-- Events with any bad signal: what clustering and impact start from.
CREATE OR REPLACE VIEW bad_events AS
SELECT * FROM event_facts WHERE is_bad;

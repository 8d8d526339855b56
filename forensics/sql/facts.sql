-- Canonical views every stage and saved query builds on. Re-created each time a case is
-- opened for writing, so they follow the library version.

-- One row per event with the cohort keys pulled out of attributes and the bad signals:
-- a detector or reviewer label, an error, a flagged moderation, negative feedback.
CREATE OR REPLACE VIEW event_facts AS
WITH lab AS (
    SELECT event_id, list(DISTINCT label ORDER BY label) AS labels FROM labels GROUP BY event_id
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
    coalesce(flag.flagged_categories, []) AS flagged_categories,
    e.status = 'error'                AS is_error,
    flag.event_id IS NOT NULL         AS is_flagged,
    coalesce(fb_event.negative, fb_trace.negative, false) AS negative_feedback,
    lab.event_id IS NOT NULL
        OR coalesce(e.status = 'error', false)
        OR flag.event_id IS NOT NULL
        OR coalesce(fb_event.negative, fb_trace.negative, false) AS is_bad
FROM events e
LEFT JOIN lab ON lab.event_id = e.event_id
LEFT JOIN flag ON flag.event_id = e.event_id
LEFT JOIN fb_event ON fb_event.event_id = e.event_id
LEFT JOIN fb_trace ON fb_trace.trace_id = e.trace_id;

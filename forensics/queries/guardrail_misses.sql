-- title: Guardrail misses
-- description: Bad outputs (labelled by a detector or reviewer) that no moderation or
-- description: guardrail flagged, by feature and label: what the guardrails let through.
-- needs: events, labels
-- empty: every labelled bad output was flagged by a moderation or guardrail
SELECT feature, label, count(*) AS missed_events,
       count(DISTINCT user_id) AS users, min(ts) AS first_seen, max(ts) AS last_seen,
       any_value(event_id) AS example_event
FROM (SELECT *, unnest(labels) AS label FROM event_facts WHERE len(labels) > 0 AND NOT is_flagged)
GROUP BY feature, label
ORDER BY missed_events DESC;

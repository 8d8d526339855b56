-- title: Error breakdown
-- description: Errors by provider, model and error message (digits folded), with first and
-- description: last occurrence: outages, rate limits and timeouts.
-- needs: events
-- empty: no event has status 'error' in this case
SELECT provider, model, regexp_replace(coalesce(error, '(no message)'), '[0-9]+', 'N', 'g')
       AS error, count(*) AS events, count(DISTINCT user_id) AS users,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM events
WHERE status = 'error'
GROUP BY ALL
ORDER BY events DESC;

-- title: Exposure window of a pattern
-- description: First and last occurrence of a label (or any bad signal), the distinct users,
-- description: sessions and events exposed, per feature.
-- param: label VARCHAR = NULL   -- a detector label, or any bad signal when NULL
-- needs: events
-- empty: no event has a bad signal (or the label) in this case; run forensics detect CASE first
SELECT feature, min(ts) AS first_exposure, max(ts) AS last_exposure,
       round(date_diff('second', min(ts), max(ts)) / 3600, 2) AS duration_hours,
       count(DISTINCT user_id) AS users, count(DISTINCT session_id) AS sessions,
       count(*) AS events
FROM event_facts
WHERE CASE WHEN getvariable('label') IS NULL THEN is_bad
           ELSE list_contains(labels, getvariable('label')) END
GROUP BY feature
ORDER BY events DESC;

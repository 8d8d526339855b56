-- title: Traffic and bad rate by version and day
-- description: Events, bad events and bad rate per day for each feature and its prompt,
-- description: model and retrieval versions. The bad signal is event_facts.is_bad.
-- param: feature VARCHAR = NULL   -- one feature, or all when NULL
-- needs: events
-- empty: no events for this feature in this case
SELECT date_trunc('day', ts) AS day, feature, prompt_version, model, retrieval_version,
       count(*) AS events,
       count(*) FILTER (WHERE is_bad) AS bad_events,
       round(count(*) FILTER (WHERE is_bad) / count(*), 4) AS bad_rate
FROM event_facts
WHERE getvariable('feature') IS NULL OR feature = getvariable('feature')
GROUP BY ALL
ORDER BY day, feature, prompt_version, model, retrieval_version;

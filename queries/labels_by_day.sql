-- title: Labels per day
-- description: How many events each detector or reviewer label marked per day, and the
-- description: share of that day's events.
SELECT date_trunc('day', e.ts) AS day, l.label, l.source, count(DISTINCT l.event_id) AS events,
       round(count(DISTINCT l.event_id) / any_value(d.n), 4) AS share_of_day
FROM labels l JOIN events e USING (event_id)
JOIN (SELECT date_trunc('day', ts) AS day, count(*) AS n FROM events GROUP BY 1) d
     ON d.day = date_trunc('day', e.ts)
GROUP BY ALL
ORDER BY day, events DESC;

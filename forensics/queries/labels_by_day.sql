-- title: Labels per day
-- description: How many events each detector or reviewer label marked per day, and the
-- description: share of that day's events. Labels that mean a bad output by default;
-- description: informational ones (output_language, new_tool_action, reviewer "ok") too on request.
-- param: include_info BOOLEAN = false   -- also count informational labels
-- needs: events, labels
-- empty: no labels that mean a bad output (include_info = true also counts informational ones)
SELECT date_trunc('day', e.ts) AS day, l.label, l.source, coalesce(v.bad, true) AS bad,
       v.category, count(DISTINCT l.event_id) AS events,
       round(count(DISTINCT l.event_id) / any_value(d.n), 4) AS share_of_day
FROM labels l JOIN events e USING (event_id)
LEFT JOIN label_vocabulary v ON v.label = l.label
JOIN (SELECT date_trunc('day', ts) AS day, count(*) AS n FROM events GROUP BY 1) d
     ON d.day = date_trunc('day', e.ts)
WHERE coalesce(v.bad, true) OR coalesce(getvariable('include_info'), false)
GROUP BY ALL
ORDER BY day, events DESC;

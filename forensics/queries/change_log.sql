-- title: Change log with traffic around each change
-- description: Declared and inferred changes in time order, with the feature's events and
-- description: bad rate in the window before and after each change.
-- param: hours INTEGER = 24   -- the window before and after, in hours
-- needs: changes
-- empty: no changes in this case
SELECT c.ts, c.kind, c.feature, c.from_version, c.to_version, c.source, c.note,
       count(*) FILTER (WHERE f.ts < c.ts) AS events_before,
       round(count(*) FILTER (WHERE f.ts < c.ts AND f.is_bad)
             / nullif(count(*) FILTER (WHERE f.ts < c.ts), 0), 4) AS bad_rate_before,
       count(*) FILTER (WHERE f.ts >= c.ts) AS events_after,
       round(count(*) FILTER (WHERE f.ts >= c.ts AND f.is_bad)
             / nullif(count(*) FILTER (WHERE f.ts >= c.ts), 0), 4) AS bad_rate_after
FROM changes c
LEFT JOIN event_facts f
       ON (f.feature = c.feature OR c.feature IS NULL)
      AND f.ts BETWEEN c.ts - to_hours(getvariable('hours')) AND c.ts + to_hours(getvariable('hours'))
GROUP BY ALL
ORDER BY c.ts;

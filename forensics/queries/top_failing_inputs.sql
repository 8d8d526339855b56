-- title: Top failing inputs
-- description: The user inputs (lower-cased, digits folded) that most often led to a bad
-- description: output, with their bad rate over all their occurrences.
-- param: limit_rows INTEGER = 50   -- how many inputs to list
-- needs: events
-- empty: no input led to a bad output
SELECT regexp_replace(lower(trim(input_text)), '[0-9]+', '#', 'g') AS input_pattern,
       count(*) AS events, count(*) FILTER (WHERE is_bad) AS bad_events,
       round(count(*) FILTER (WHERE is_bad) / count(*), 4) AS bad_rate,
       any_value(event_id) FILTER (WHERE is_bad) AS example_event
FROM event_facts
WHERE input_text IS NOT NULL
GROUP BY 1
HAVING count(*) FILTER (WHERE is_bad) > 0
ORDER BY bad_events DESC, bad_rate DESC
LIMIT getvariable('limit_rows');

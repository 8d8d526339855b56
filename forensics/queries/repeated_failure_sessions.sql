-- title: Sessions with repeated failures
-- description: Sessions in which a user met at least min_bad bad outputs: the people who
-- description: were hurt more than once.
-- param: min_bad INTEGER = 2   -- bad events a session needs to be listed
-- needs: events
-- empty: no session has at least min_bad bad events
SELECT session_id, user_id, any_value(feature) AS feature, count(*) AS events,
       count(*) FILTER (WHERE is_bad) AS bad_events, min(ts) AS started, max(ts) AS ended,
       list_sort(list_distinct(flatten(list(labels)))) AS labels
FROM event_facts
GROUP BY session_id, user_id
HAVING count(*) FILTER (WHERE is_bad) >= getvariable('min_bad')
ORDER BY bad_events DESC, events DESC;

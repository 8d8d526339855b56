-- title: Tool calls and unauthorized actions
-- description: Every tool a feature called, how often, since when, by which release, and
-- description: how many calls a detector judged unauthorized or new.
-- needs: events
-- empty: no event names a tool it called
SELECT feature, tool_name, release, count(*) AS calls, min(ts) AS first_call,
       max(ts) AS last_call, count(DISTINCT user_id) AS users,
       count(*) FILTER (WHERE list_contains(labels, 'unauthorized_action')) AS unauthorized,
       count(*) FILTER (WHERE list_contains(labels, 'new_tool_action')) AS new_tool,
       count(*) FILTER (WHERE is_error) AS errors
FROM event_facts
WHERE tool_name IS NOT NULL
GROUP BY ALL
ORDER BY unauthorized DESC, first_call;

-- title: Affected users by cohort
-- description: Distinct users, sessions and bad events per cohort (plan, locale, region,
-- description: client version), optionally for one label, with each cohort's share of users.
-- param: label VARCHAR = NULL   -- a detector label (e.g. pii_leak), or any bad signal
-- needs: events
-- empty: no event has a bad signal (or the label) in this case: no detector label, error, flagged moderation or negative feedback; run forensics detect CASE first
SELECT plan, locale, region, client_version,
       count(DISTINCT user_id) AS users,
       count(DISTINCT session_id) AS sessions,
       count(*) AS bad_events,
       round(count(DISTINCT user_id) / sum(count(DISTINCT user_id)) OVER (), 4) AS user_share
FROM event_facts
WHERE CASE WHEN getvariable('label') IS NULL THEN is_bad
           ELSE list_contains(labels, getvariable('label')) END
GROUP BY ALL
ORDER BY users DESC;

-- title: Retrieval document churn between index versions
-- description: Documents retrieved under one index version and not the other: entering
-- description: and leaving documents with how often they were retrieved and the bad rate
-- description: of the events that retrieved them.
-- param: from_version VARCHAR = NULL   -- the old retrieval_version (NULL: the older of the two most used)
-- param: to_version VARCHAR = NULL     -- the new retrieval_version (NULL: the newer)
-- needs: events, retrievals
-- empty: no document entered or left between the two retrieval versions (or the events carry fewer than two retrieval_version values)
WITH versions AS (
    SELECT retrieval_version, min(ts) AS first_ts FROM events
    WHERE retrieval_version IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 2
), pick AS (
    SELECT coalesce(getvariable('from_version'),
                    (SELECT retrieval_version FROM versions ORDER BY first_ts LIMIT 1)) AS v_from,
           coalesce(getvariable('to_version'),
                    (SELECT retrieval_version FROM versions ORDER BY first_ts DESC LIMIT 1)) AS v_to
), docs AS (
    SELECT r.doc_id, f.retrieval_version, count(*) AS retrieved,
           count(*) FILTER (WHERE f.is_bad) AS bad
    FROM retrievals r JOIN event_facts f USING (event_id), pick
    WHERE f.retrieval_version IN (pick.v_from, pick.v_to)
    GROUP BY ALL
)
SELECT d.doc_id,
       CASE WHEN d.retrieval_version = pick.v_to THEN 'entered' ELSE 'left' END AS change,
       d.retrieval_version, d.retrieved, d.bad, round(d.bad / d.retrieved, 4) AS bad_rate
FROM docs d, pick
WHERE NOT EXISTS (SELECT 1 FROM docs o WHERE o.doc_id = d.doc_id
                  AND o.retrieval_version <> d.retrieval_version)
ORDER BY change, bad DESC, retrieved DESC;

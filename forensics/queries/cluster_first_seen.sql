-- title: First appearance of each failure cluster
-- description: For each cluster of the latest clustering run: first and last bad event,
-- description: size, category, and the versions most of its events were served by.
-- needs: clusters, cluster_members
-- empty: the latest clustering run has no cluster with events in this case
SELECT c.cluster_id, c.title, c.category, count(*) AS events,
       min(e.ts) AS first_seen, max(e.ts) AS last_seen,
       mode(e.prompt_version) AS top_prompt_version, mode(e.model) AS top_model,
       mode(e.retrieval_version) AS top_retrieval_version
FROM clusters c
JOIN cluster_members m USING (cluster_id, run_id)
JOIN events e USING (event_id)
WHERE c.run_id = (SELECT run_id FROM runs WHERE stage = 'cluster' ORDER BY created_at DESC LIMIT 1)
GROUP BY ALL
ORDER BY first_seen;

-- title: Reject reasons
-- description: Why records were refused, per file and reason (digits folded so that
-- description: "line 12" and "line 40" count together), with the first locator.
-- needs: rejects
-- empty: no rejects in this case
SELECT v.path, regexp_replace(r.reason, '[0-9]+', 'N', 'g') AS reason, count(*) AS records,
       min(r.locator) AS first_locator
FROM rejects r JOIN evidence v USING (evidence_id)
GROUP BY ALL
ORDER BY records DESC;

-- What changed: declared changes (table `changes`) and changes inferred from the traffic
-- (first appearance of a new value of a version column, per feature), one row per change.
-- Parameters: $bucket (INTERVAL text, e.g. '1 hour'), $settle (INTERVAL text: a version
-- already seen within this long of the feature's first event is a baseline, not a change),
-- $feature (VARCHAR or NULL for all features).
WITH cube AS (
    SELECT feature, time_bucket(CAST($bucket AS INTERVAL), ts) AS bucket, model,
           response_model, prompt_version, retrieval_version, release,
           count(*) AS n, min(ts) AS first_ts
    FROM events
    WHERE feature IS NOT NULL AND ts IS NOT NULL
      AND ($feature IS NULL OR feature = $feature)
    GROUP BY ALL
), obs AS (
    UNPIVOT cube ON model, response_model, prompt_version, retrieval_version, release
    INTO NAME col VALUE version
), per_bucket AS (
    SELECT feature, col, version, bucket, sum(n) AS n, min(first_ts) AS first_ts
    FROM obs GROUP BY ALL
), versions AS (
    SELECT feature, col, version, min(first_ts) AS first_seen, sum(n) AS events
    FROM per_bucket GROUP BY ALL
), starts AS (
    SELECT feature, min(first_ts) AS feature_start FROM cube GROUP BY feature
), fresh AS (
    SELECT v.* FROM versions v JOIN starts s USING (feature)
    WHERE v.first_seen >= s.feature_start + CAST($settle AS INTERVAL)
), before_counts AS (      -- what the feature ran in the day before the new value appeared
    SELECT f.feature, f.col, f.version, p.version AS prev, sum(p.n) AS n
    FROM fresh f JOIN per_bucket p
      ON p.feature = f.feature AND p.col = f.col AND p.version <> f.version
     AND p.bucket >= f.first_seen - INTERVAL 1 DAY AND p.bucket < f.first_seen
    GROUP BY ALL
), inferred AS (
    SELECT 'inferred:' || f.feature || ':' || f.col || ':' || f.version AS change_id,
           f.first_seen AS ts,
           CASE f.col WHEN 'prompt_version' THEN 'prompt' WHEN 'retrieval_version'
                THEN 'retrieval' WHEN 'release' THEN 'release' ELSE 'model' END AS kind,
           f.feature, f.col AS "column",
           (SELECT arg_max(b.prev, b.n) FROM before_counts b WHERE b.feature = f.feature
              AND b.col = f.col AND b.version = f.version) AS from_version,
           f.version AS to_version, 'inferred' AS source, f.first_seen, f.events AS events_on_new,
           CASE WHEN f.col = 'response_model'
                THEN 'served model changed without a change of the requested model (alias drift)'
                ELSE 'first appearance of ' || f.col || ' ' || f.version END AS note
    FROM fresh f
    -- a served-model change that only mirrors a requested-model change is the same change
    WHERE NOT (f.col = 'response_model' AND EXISTS (
        SELECT 1 FROM fresh m WHERE m.feature = f.feature AND m.col = 'model'
          AND m.version = f.version))
), declared AS (
    SELECT d.change_id, d.ts, d.kind, d.feature,
           coalesce(
             (SELECT v.col FROM versions v WHERE v.feature = d.feature
                AND v.version = d.to_version
              ORDER BY (v.col = CASE d.kind WHEN 'prompt' THEN 'prompt_version'
                        WHEN 'retrieval' THEN 'retrieval_version' WHEN 'release' THEN 'release'
                        WHEN 'model' THEN 'model' END) DESC, v.events DESC LIMIT 1),
             CASE d.kind WHEN 'prompt' THEN 'prompt_version' WHEN 'retrieval'
                  THEN 'retrieval_version' WHEN 'release' THEN 'release'
                  WHEN 'model' THEN 'model' END) AS "column",
           d.from_version, d.to_version, coalesce(d.source, 'declared') AS source,
           d.note
    FROM changes d
    WHERE $feature IS NULL OR d.feature = $feature OR d.feature IS NULL
), matched AS (           -- a declared change and its first appearance in traffic
    SELECT d.*, f.first_seen, f.events AS events_on_new
    FROM declared d
    LEFT JOIN fresh f ON f.feature = d.feature AND f.col = d."column"
                     AND f.version = d.to_version
)
SELECT change_id, ts, kind, feature, "column", from_version, to_version, source, first_seen,
       events_on_new, note
FROM matched
UNION ALL BY NAME
SELECT i.* FROM inferred i
WHERE NOT EXISTS (SELECT 1 FROM matched m WHERE m.feature = i.feature
                  AND m."column" = i."column" AND m.to_version = i.to_version)
ORDER BY ts, feature, change_id

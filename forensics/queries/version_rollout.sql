-- title: Version rollout share
-- description: Share of a feature's traffic served by each prompt version, model and
-- description: retrieval version per hour: how fast a change rolled out.
-- param: feature VARCHAR = NULL      -- one feature, or all
-- param: version_column VARCHAR = 'prompt_version'  -- prompt_version, model, response_model, retrieval_version or release
-- needs: events
-- empty: no events for this feature in this case
SELECT *, round(events / sum(events) OVER (PARTITION BY hour, feature), 4) AS share
FROM (SELECT date_trunc('hour', ts) AS hour, feature,
             CASE getvariable('version_column')
                  WHEN 'model' THEN model WHEN 'response_model' THEN response_model
                  WHEN 'retrieval_version' THEN retrieval_version WHEN 'release' THEN release
                  ELSE prompt_version END AS version,
             count(*) AS events
      FROM events
      WHERE getvariable('feature') IS NULL OR feature = getvariable('feature')
      GROUP BY ALL)
ORDER BY hour, feature, version;

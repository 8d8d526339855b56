-- title: Cost and latency spikes
-- description: Hourly cost, tokens and latency p50/p95 per feature, with a z-score against
-- description: the trailing 7 days of the same feature; spikes have |z| above the threshold.
-- param: z DOUBLE = 3   -- the z-score threshold
-- needs: events
-- empty: no hour's cost or p95 latency is further than z standard deviations from the trailing 7 days of its feature (or there is too little history, or no cost and duration, to score)
WITH hourly AS (
    SELECT date_trunc('hour', ts) AS hour, feature, count(*) AS events,
           sum(cost_usd) AS cost_usd, sum(input_tokens + output_tokens) AS tokens,
           quantile_cont(duration_ms, 0.5) AS p50_ms, quantile_cont(duration_ms, 0.95) AS p95_ms
    FROM events GROUP BY ALL
), scored AS (
    SELECT *,
        (cost_usd - avg(cost_usd) OVER w) / nullif(stddev_samp(cost_usd) OVER w, 0) AS cost_z,
        (p95_ms - avg(p95_ms) OVER w) / nullif(stddev_samp(p95_ms) OVER w, 0) AS p95_z
    FROM hourly
    WINDOW w AS (PARTITION BY feature ORDER BY hour
                 RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 HOUR PRECEDING)
)
SELECT * FROM scored
WHERE abs(cost_z) > getvariable('z') OR abs(p95_z) > getvariable('z')
ORDER BY hour, feature;

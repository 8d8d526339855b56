-- title: Model alias drift
-- description: Requested model versus the model that actually answered, per day: a new
-- description: response model behind an unchanged alias is a change nobody deployed.
-- needs: events
-- empty: no event names the model it requested
SELECT *, round(events / sum(events) OVER (PARTITION BY day, requested_model), 4)
           AS share_of_alias
FROM (SELECT date_trunc('day', ts) AS day, provider, model AS requested_model,
             response_model, count(*) AS events
      FROM events WHERE model IS NOT NULL GROUP BY ALL)
ORDER BY day, requested_model, events DESC;

-- title: Incident milestones and the times between them
-- description: The current mark of each milestone recorded with case.mark / forensics mark
-- description: (detected, contained, mitigated, resolved, ...), in time order, with the hours
-- description: since the first mark and since the previous one.
-- needs: milestones
-- empty: no milestones in this case
SELECT name, ts, note,
       round(date_diff('second', min(ts) OVER (), ts) / 3600, 2) AS hours_since_first,
       round(date_diff('second', lag(ts) OVER (ORDER BY ts), ts) / 3600, 2)
           AS hours_since_previous
FROM (SELECT *, row_number() OVER (PARTITION BY name
                                   ORDER BY recorded_at DESC, milestone_id DESC) AS latest
      FROM milestones)
WHERE latest = 1
ORDER BY ts;

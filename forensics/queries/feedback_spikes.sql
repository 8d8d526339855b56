-- title: Feedback spikes
-- description: Negative feedback per day (thumbs down, low ratings, complaints), the share
-- description: of all feedback that day, and the ratio to the trailing 7-day average.
-- needs: feedback
-- empty: no feedback in this case
SELECT day, feedback, negative, round(negative / feedback, 4) AS negative_share,
       round(negative / nullif(avg(negative) OVER (ORDER BY day ROWS BETWEEN 7 PRECEDING
                                                   AND 1 PRECEDING), 0), 2) AS ratio_to_week
FROM (SELECT date_trunc('day', ts) AS day, count(*) AS feedback,
             count(*) FILTER (WHERE negative) AS negative
      FROM feedback GROUP BY 1)
ORDER BY day;

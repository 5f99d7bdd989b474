-- Closed windows of one width (label {window}) over [start, end) whose detector score was
-- at or above its threshold, per series (the best score of its detectors), by time; and
-- each series' median value over every scored window of the period.
SELECT
    a.series AS series,
    a.window_end AS window_end,
    a.value AS value,
    a.best AS score,
    m.median AS median
FROM
(
    SELECT series, window_end, any(value) AS value, max(score) AS best
    FROM {db}.anomaly_scores FINAL
    WHERE window = {window:String}
      AND window_end >= {start:DateTime64(3)} AND window_end < {end:DateTime64(3)}
      AND score >= threshold
      AND ({service:String} = '' OR service = {service:String})
    GROUP BY series, window_end
) AS a
INNER JOIN
(
    SELECT series, median(value) AS median
    FROM {db}.anomaly_scores FINAL
    WHERE window = {window:String}
      AND window_end >= {start:DateTime64(3)} AND window_end < {end:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
    GROUP BY series
) AS m ON a.series = m.series
ORDER BY series, window_end
LIMIT {limit:UInt32}

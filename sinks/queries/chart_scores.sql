-- Detector scores of one series' windows ending in (start, end], the highest per bucket
-- of step_s seconds (a bucket as wide as the window holds one), at the bucket's end.
SELECT
    toStartOfInterval(window_end - toIntervalMillisecond(1), toIntervalSecond({step_s:UInt32}))
        + toIntervalSecond({step_s:UInt32}) AS t,
    detector,
    max(score) AS score,
    any(threshold) AS threshold
FROM {db}.anomaly_scores FINAL
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND series = {series:String}
  AND window_end > {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
GROUP BY t, detector
ORDER BY t, detector
LIMIT {limit:UInt32}

-- One series over (start, end] from its raw events, in buckets of step_s seconds (for
-- ranges longer than the windows' chart shows), one point per bucket, at its end.
SELECT
    toStartOfInterval(ts, toIntervalSecond({step_s:UInt32}))
        + toIntervalSecond({step_s:UInt32}) AS t,
    count() AS count,
    countIf(ok = false) AS errors,
    avg(value) AS mean,
    min(value) AS min,
    max(value) AS max,
    quantilesExactInclusive({quantiles})(value) AS q
FROM {db}.events
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND series = {series:String}
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
GROUP BY t
ORDER BY t
LIMIT {limit:UInt32}

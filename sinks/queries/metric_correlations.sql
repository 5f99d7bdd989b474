-- How a service's metrics move together over [start, end): each metric series' mean per
-- {step_s}-second bucket, and the Pearson correlation of every pair of series over the
-- buckets both have (at least {min_buckets}).
WITH buckets AS
(
    SELECT series, toStartOfInterval(ts, toIntervalSecond({step_s:UInt32})) AS bucket,
           avg(value) AS mean
    FROM {db}.events
    WHERE kind = 'metric'
      AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
      AND series IN (
          SELECT series FROM {db}.events
          WHERE kind = 'metric'
            AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
            AND ({service:String} = '' OR service = {service:String})
          GROUP BY series ORDER BY count() DESC, series LIMIT {max_series:UInt32}
      )
    GROUP BY series, bucket
)
SELECT
    a.series AS first,
    b.series AS second,
    count() AS buckets,
    corr(a.mean, b.mean) AS r
FROM buckets AS a
INNER JOIN buckets AS b ON a.bucket = b.bucket
WHERE a.series < b.series
GROUP BY first, second
HAVING buckets >= {min_buckets:UInt32} AND isFinite(r)
ORDER BY abs(r) DESC, first, second
LIMIT {limit:UInt32}

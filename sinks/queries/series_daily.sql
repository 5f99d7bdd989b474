-- Daily rollups per series, merged from their aggregate states.
SELECT
    day, kind, service, name, series,
    sum(count) AS count,
    sum(errors) AS errors,
    sum(values) AS values,
    min(min) AS min,
    max(max) AS max,
    avgMerge(avg) AS avg,
    stddevPopMerge(stddev) AS stddev,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(quantiles) AS quantiles
FROM {db}.series_daily
WHERE day >= {first:Date} AND day <= {last:Date}
  AND ({kind:String} = '' OR kind = {kind:String})
  AND ({service:String} = '' OR service = {service:String})
  AND ({name:String} = '' OR name = {name:String})
  AND ({series:String} = '' OR series = {series:String})
GROUP BY day, kind, service, name, series
ORDER BY kind, service, name, series, day
LIMIT {limit:UInt32}

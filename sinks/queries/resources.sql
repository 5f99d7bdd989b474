-- Resource use per service over [start, end): the SDK's resource samples (mean, median,
-- population standard deviation, p95, max).
SELECT
    service,
    name AS resource,
    count() AS samples,
    avg(value) AS mean,
    quantileExactInclusive(0.5)(value) AS median,
    stddevPop(value) AS stddev,
    quantileExactInclusive(0.95)(value) AS p95,
    max(value) AS max
FROM {db}.events
WHERE kind = 'metric'
  AND name IN {names:Array(String)}
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, resource
ORDER BY service, resource
LIMIT {limit:UInt32}

-- Allocations over [start, end) (the SDK's utilization_percent) per service, resource and
-- type: samples, mean, p95 and max use in % of the allocation, and the latest allocated
-- and used amounts with their unit.
SELECT
    service,
    tags['resource'] AS resource,
    tags['type'] AS type,
    count() AS samples,
    avg(value) AS mean_percent,
    quantileExactInclusive(0.95)(value) AS p95_percent,
    max(value) AS max_percent,
    argMax(JSONExtractFloat(attrs, 'allocated'), (ts, offset, idx)) AS allocated,
    argMax(JSONExtractFloat(attrs, 'used'), (ts, offset, idx)) AS used,
    argMax(JSONExtractString(attrs, 'unit'), (ts, offset, idx)) AS unit
FROM {db}.events
WHERE kind = 'metric' AND name = 'utilization_percent'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, resource, type
ORDER BY service, resource, type
LIMIT {limit:UInt32}

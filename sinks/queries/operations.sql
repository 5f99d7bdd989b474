-- Per operation (a span name of a service) over [start, end): how many spans and traces,
-- how many failed, and their durations.
SELECT
    service,
    name AS operation,
    count() AS spans,
    uniqExact(trace_id) AS traces,
    countIf(NOT ok) AS errors,
    countIf(NOT ok) / count() AS error_rate,
    avg(duration_ms) AS mean_ms,
    quantileExactInclusive(0.5)(duration_ms) AS p50_ms,
    quantileExactInclusive(0.95)(duration_ms) AS p95_ms,
    max(duration_ms) AS max_ms
FROM {db}.spans
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, operation
ORDER BY spans DESC, service, operation
LIMIT {limit:UInt32}

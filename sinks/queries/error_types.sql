-- The most frequent error types over [start, end), with the latest message of each.
SELECT
    service,
    name AS type,
    count() AS count,
    uniqExact(execution_id) - (countIf(execution_id = '') > 0) AS executions,
    min(ts) AS first_seen,
    max(ts) AS last_seen,
    argMax(message, ts) AS last_message
FROM {db}.events
WHERE kind = 'error'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, type
ORDER BY count DESC, service, type
LIMIT {limit:UInt32}

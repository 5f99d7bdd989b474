-- How each function fails over [start, end): errors per function (the ``function`` the
-- SDK's track_errors and a step's context give; else the workflow step, else '') and
-- error type: how often, first and last time, and the latest message.
SELECT
    service,
    multiIf(JSONExtractString(attrs, 'context', 'function') != '',
            JSONExtractString(attrs, 'context', 'function'),
            JSONExtractString(attrs, 'context', 'step') != '',
            concat(JSONExtractString(attrs, 'context', 'workflow'), '.',
                   JSONExtractString(attrs, 'context', 'step')),
            JSONExtractString(attrs, 'step') != '', JSONExtractString(attrs, 'step'),
            '') AS function,
    name AS type,
    count() AS errors,
    min(ts) AS first_seen,
    max(ts) AS last_seen,
    argMax(message, (ts, offset, idx)) AS last_message
FROM {db}.events
WHERE kind = 'error'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, function, type
ORDER BY errors DESC, service, function, type
LIMIT {limit:UInt32}

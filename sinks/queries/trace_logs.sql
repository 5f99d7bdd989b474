-- The log lines and errors of one trace.
SELECT ts, service, level, name, message, span_id
FROM {db}.logs
WHERE trace_id = {trace_id:String}
ORDER BY ts
LIMIT {limit:UInt32}

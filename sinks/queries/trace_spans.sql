-- Every span of one trace.
SELECT span_id, parent_id, ts, service, name, duration_ms, ok, status, message, execution_id,
    attrs
FROM {db}.spans
WHERE trace_id = {trace_id:String}
ORDER BY ts, span_id
LIMIT {limit:UInt32}

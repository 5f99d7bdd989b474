-- Log lines (and errors) over [start, end), newest first. The text is matched literally,
-- case-insensitively: `pattern` is the text with LIKE's own characters escaped.
SELECT ts, service, level, kind, name, message, trace_id, span_id, execution_id, tags
FROM {db}.logs
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND (length({levels:Array(String)}) = 0 OR level IN {levels:Array(String)})
  AND ({pattern:String} = '' OR lower(message) LIKE {pattern:String})
ORDER BY ts DESC
LIMIT {limit:UInt32}

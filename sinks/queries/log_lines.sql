-- Log lines (and errors) over [start, end), oldest first: the input of log pattern mining.
SELECT ts, level, message
FROM {db}.logs
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND (length({levels:Array(String)}) = 0 OR level IN {levels:Array(String)})
ORDER BY ts
LIMIT {limit:UInt32}

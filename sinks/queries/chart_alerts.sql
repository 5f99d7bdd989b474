-- The alert transitions of one series before end: those from start on, and the last one
-- of each rule before start (an alert firing since before the range is drawn from start).
SELECT at, rule, severity, state, previous, value, score
FROM {db}.alerts FINAL
WHERE series = {series:String} AND at < {end:DateTime64(3)}
  AND (
    at >= {start:DateTime64(3)}
    OR (rule, at) IN (
        SELECT rule, max(at) FROM {db}.alerts
        WHERE series = {series:String} AND at < {start:DateTime64(3)}
        GROUP BY rule
    )
  )
ORDER BY at, rule, seq
LIMIT {limit:UInt32}

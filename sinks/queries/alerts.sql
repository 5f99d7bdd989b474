-- Alert transitions over [start, end), newest first.
SELECT
    at, rule, type, series, kind, service, name, state, previous, severity, value, threshold,
    op, score, window,
    started_at, fingerprint, silenced, flapping, annotations
FROM {db}.alerts FINAL
WHERE at >= {start:DateTime64(3)} AND at < {end:DateTime64(3)}
  AND ({rule:String} = '' OR rule = {rule:String})
  AND ({series:String} = '' OR series = {series:String})
  AND ({state:String} = '' OR state = {state:String})
ORDER BY at DESC, rule, series, seq DESC
LIMIT {limit:UInt32}

-- Alert statistics over [start, end): per rule and severity, the transitions to each state,
-- the series they touched, and how long the episodes that resolved took (from the start
-- of the episode, pending included, to its resolution).
SELECT
    rule,
    any(type) AS type,
    severity,
    countIf(state = 'pending') AS pending,
    countIf(state = 'firing') AS fired,
    countIf(state = 'resolved') AS resolved,
    uniqExact(series) AS series,
    countIf(silenced) AS silenced,
    countIf(flapping) AS flapping,
    avgIf(dateDiff('millisecond', started_at, at) / 1000, state = 'resolved') AS mean_resolve_s,
    quantileExactInclusiveIf(0.95)(
        dateDiff('millisecond', started_at, at) / 1000, state = 'resolved'
    ) AS p95_resolve_s,
    maxIf(dateDiff('millisecond', started_at, at) / 1000, state = 'resolved') AS max_resolve_s
FROM {db}.alerts FINAL
WHERE at >= {start:DateTime64(3)} AND at < {end:DateTime64(3)}
  AND ({rule:String} = '' OR rule = {rule:String})
GROUP BY rule, severity
ORDER BY fired DESC, rule, severity
LIMIT {limit:UInt32}

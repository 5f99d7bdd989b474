-- Steps over [start, end) per workflow and action type (what the step says it does: io,
-- compute, network, ...; '' when it says nothing): runs, failures, durations (ms).
SELECT
    service,
    name AS workflow,
    JSONExtractString(attrs, 'action') AS action,
    count() AS runs,
    uniqExact(step) AS steps,
    countIf(ok = false) AS failures,
    failures / runs AS failure_rate,
    avg(value) AS mean_ms,
    quantileExactInclusive(0.95)(value) AS p95_ms
FROM {db}.events
WHERE kind = 'step.end'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({workflow:String} = '' OR name = {workflow:String})
GROUP BY service, workflow, action
ORDER BY service, workflow, action
LIMIT {limit:UInt32}

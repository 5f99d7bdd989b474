-- Per workflow step over [start, end): runs, failures, mean and p95 duration (ms).
SELECT
    service,
    name AS workflow,
    step,
    count() AS runs,
    countIf(ok = false) AS failures,
    failures / runs AS failure_rate,
    avg(value) AS mean_ms,
    quantileExactInclusive(0.95)(value) AS p95_ms,
    max(value) AS max_ms
FROM {db}.events
WHERE kind = 'step.end'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({workflow:String} = '' OR name = {workflow:String})
GROUP BY service, workflow, step
ORDER BY service, workflow, step
LIMIT {limit:UInt32}

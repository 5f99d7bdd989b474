-- Phases of executions over [start, end): the spans ``run.phase(name)`` records (their
-- attributes hold the phase and the workflow), per workflow and phase.
SELECT
    service,
    JSONExtractString(attrs, 'workflow') AS workflow,
    JSONExtractString(attrs, 'phase') AS phase,
    count() AS runs,
    uniqExact(execution_id) AS executions,
    countIf(NOT ok) AS failures,
    avg(duration_ms) AS mean_ms,
    quantileExactInclusive(0.5)(duration_ms) AS p50_ms,
    quantileExactInclusive(0.95)(duration_ms) AS p95_ms,
    max(duration_ms) AS max_ms,
    min(ts) AS first_start
FROM {db}.spans
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND JSONHas(attrs, 'phase')
  AND ({workflow:String} = '' OR JSONExtractString(attrs, 'workflow') = {workflow:String})
GROUP BY service, workflow, phase
ORDER BY service, workflow, first_start, phase
LIMIT {limit:UInt32}

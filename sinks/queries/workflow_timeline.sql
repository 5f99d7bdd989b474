-- Per workflow and bucket of step_s seconds over [start, end): runs, success rate and
-- p50/p95 duration (ms) of the executions that ended in it.
SELECT
    service,
    workflow,
    toStartOfInterval(ended_at, toIntervalSecond({step_s:UInt32})) AS t,
    count() AS runs,
    avg(ok) AS success_rate,
    quantileExactInclusive(0.5)(duration_ms) AS p50_ms,
    quantileExactInclusive(0.95)(duration_ms) AS p95_ms
FROM {db}.executions FINAL
WHERE ended_at >= {start:DateTime64(3)} AND ended_at < {end:DateTime64(3)}
GROUP BY service, workflow, t
ORDER BY service, workflow, t
LIMIT {limit:UInt32}

-- Per workflow, the period [mid, end) and the one before it [start, mid): runs, success
-- rate, mean/p50/p95 duration (ms), recoveries.
SELECT
    service,
    workflow,
    countIf(ended_at >= {mid:DateTime64(3)}) AS runs,
    avgIf(ok, ended_at >= {mid:DateTime64(3)}) AS success_rate,
    avgIf(duration_ms, ended_at >= {mid:DateTime64(3)}) AS mean_ms,
    quantileExactInclusiveIf(0.5)(duration_ms, ended_at >= {mid:DateTime64(3)}) AS p50_ms,
    quantileExactInclusiveIf(0.95)(duration_ms, ended_at >= {mid:DateTime64(3)}) AS p95_ms,
    sumIf(recoveries, ended_at >= {mid:DateTime64(3)}) AS recoveries,
    countIf(ended_at < {mid:DateTime64(3)}) AS prev_runs,
    avgIf(ok, ended_at < {mid:DateTime64(3)}) AS prev_success_rate,
    avgIf(duration_ms, ended_at < {mid:DateTime64(3)}) AS prev_mean_ms,
    quantileExactInclusiveIf(0.5)(duration_ms, ended_at < {mid:DateTime64(3)}) AS prev_p50_ms,
    quantileExactInclusiveIf(0.95)(duration_ms, ended_at < {mid:DateTime64(3)}) AS prev_p95_ms
FROM {db}.executions FINAL
WHERE ended_at >= {start:DateTime64(3)} AND ended_at < {end:DateTime64(3)}
  AND ({workflow:String} = '' OR workflow = {workflow:String})
GROUP BY service, workflow
ORDER BY runs DESC, service, workflow
LIMIT {limit:UInt32}

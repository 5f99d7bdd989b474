-- Executions that ended in [start, end) per workflow and number of steps completed: how
-- many, how many failed, their mean duration (ms) and recoveries.
SELECT
    service,
    workflow,
    coalesce(steps_done, 0) AS steps,
    count() AS executions,
    countIf(NOT ok) AS failures,
    avg(duration_ms) AS mean_ms,
    avg(recoveries) AS recoveries_mean
FROM {db}.executions FINAL
WHERE ended_at >= {start:DateTime64(3)} AND ended_at < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, workflow, steps
ORDER BY service, workflow, steps
LIMIT {limit:UInt32}

-- Daily rollups per workflow, merged from their aggregate states.
SELECT
    day, service, workflow,
    sum(runs) AS runs,
    sum(failures) AS failures,
    sum(steps) AS steps,
    sum(step_failures) AS step_failures,
    sum(recoveries) AS recoveries,
    sum(recovered) AS recovered,
    min(min_ms) AS min_ms,
    max(max_ms) AS max_ms,
    avgMerge(avg_ms) AS avg_ms,
    stddevPopMerge(stddev_ms) AS stddev_ms,
    quantilesTDigestMerge(0.5, 0.95, 0.99)(quantiles_ms) AS quantiles_ms
FROM {db}.workflow_daily
WHERE day >= {first:Date} AND day <= {last:Date}
  AND ({workflow:String} = '' OR workflow = {workflow:String})
GROUP BY day, service, workflow
ORDER BY service, workflow, day
LIMIT {limit:UInt32}

-- Recovery attempts over [start, end) per workflow, step, the step's action type and
-- strategy: how many, how many worked, and how long the timed ones took (the event's
-- value). Attempts not tied to a step have step ''; steps without an action type, ''.
SELECT
    service,
    name AS workflow,
    step,
    JSONExtractString(attrs, 'action') AS action,
    status AS strategy,
    count() AS attempts,
    countIf(ok = true) AS succeeded,
    succeeded / attempts AS success_rate,
    count(value) AS timed,
    avg(value) AS mean_ms,
    max(value) AS max_ms
FROM {db}.events
WHERE kind = 'recovery'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({workflow:String} = '' OR name = {workflow:String})
GROUP BY service, workflow, step, action, strategy
ORDER BY attempts DESC, service, workflow, step, action, strategy
LIMIT {limit:UInt32}

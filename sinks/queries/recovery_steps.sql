-- Recovery attempts over [start, end) per workflow, step, the step's action type and
-- strategy (the event's status): how many, how many worked, and how long the timed ones
-- took (the event's value: null when none reported a duration). Attempts not tied to a
-- step have step ''; steps without an action type, ''. sinks.history sums these per
-- strategy and per action type.
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
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, workflow, step, action, strategy
ORDER BY attempts DESC, service, workflow, step, action, strategy
LIMIT {limit:UInt32}

-- Recovery attempts over [start, end) per workflow and strategy (the event's status), with
-- how long the timed ones took (the event's value: null when none reported a duration).
SELECT
    service,
    name AS workflow,
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
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, workflow, strategy
ORDER BY attempts DESC, service, workflow, strategy
LIMIT {limit:UInt32}

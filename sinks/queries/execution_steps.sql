-- The steps of a workflow's newest executions that ended in [start, end) (at most
-- {executions}; only {execution_id} when it is given): each step's end, duration, outcome,
-- the steps it declared it waited on, and its phase. What the critical path is built from.
SELECT
    execution_id,
    step,
    ts AS ended_at,
    coalesce(value, 0) AS duration_ms,
    ok,
    JSONExtract(attrs, 'after', 'Array(String)') AS after,
    JSONExtractString(attrs, 'phase') AS phase
FROM {db}.events
WHERE kind = 'step.end'
  AND name = {workflow:String}
  AND execution_id IN (
      SELECT execution_id
      FROM {db}.events
      WHERE kind = 'execution.end'
        AND name = {workflow:String}
        AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
        AND ({execution_id:String} = '' OR execution_id = {execution_id:String})
      ORDER BY ts DESC
      LIMIT {executions:UInt32}
  )
ORDER BY execution_id, ended_at, step
LIMIT {limit:UInt32}

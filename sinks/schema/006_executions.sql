-- One row per finished execution (its execution.end event): what workflow statistics and
-- reports read, instead of scanning every raw event. Raw rows are stored exactly once, so
-- the view sees each end once; ReplacingMergeTree still keeps one row per execution if a
-- backfill and the view ever overlap.
CREATE TABLE IF NOT EXISTS {db}.executions
(
    ended_at      DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service       LowCardinality(String),
    workflow      LowCardinality(String),
    execution_id  String CODEC(ZSTD(1)),
    ok            Bool,
    status        LowCardinality(String),
    duration_ms   Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    steps_done    Nullable(UInt32),
    total_steps   Nullable(UInt32),
    recoveries    UInt32,
    trace_id      String CODEC(ZSTD(1)),
    tags          Map(LowCardinality(String), String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ended_at)
ORDER BY (service, workflow, ended_at, execution_id)
TTL toDateTime(ended_at) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.executions_mv TO {db}.executions AS
SELECT
    ts AS ended_at,
    service,
    name AS workflow,
    execution_id,
    coalesce(ok, status IN ('success', 'ok', 'succeeded', 'completed')) AS ok,
    status,
    value AS duration_ms,
    JSONExtract(attrs, 'steps_done', 'Nullable(UInt32)') AS steps_done,
    JSONExtract(attrs, 'total_steps', 'Nullable(UInt32)') AS total_steps,
    JSONExtractUInt(attrs, 'recoveries') AS recoveries,
    trace_id,
    tags
FROM {db}.events
WHERE kind = 'execution.end'

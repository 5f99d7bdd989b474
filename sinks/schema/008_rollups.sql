-- Daily rollups, kept by materialized views as raw rows arrive: per series (every kind)
-- and per workflow. Counts, sums and extremes are SimpleAggregateFunction columns; mean,
-- spread and quantiles are aggregate states that merge across parts and days
-- (read with avgMerge, stddevPopMerge, quantilesTDigestMerge(0.5, 0.95, 0.99)).
-- Errors are events with ok = false, as in the windows. Rollups outlive raw events:
-- they have no TTL.
CREATE TABLE IF NOT EXISTS {db}.series_daily
(
    day        Date,
    kind       LowCardinality(String),
    service    LowCardinality(String),
    name       LowCardinality(String),
    series     String,
    count      SimpleAggregateFunction(sum, UInt64),
    errors     SimpleAggregateFunction(sum, UInt64),
    values     SimpleAggregateFunction(sum, UInt64),
    sum        SimpleAggregateFunction(sum, Float64),
    min        SimpleAggregateFunction(min, Nullable(Float64)),
    max        SimpleAggregateFunction(max, Nullable(Float64)),
    avg        AggregateFunction(avg, Nullable(Float64)),
    stddev     AggregateFunction(stddevPop, Nullable(Float64)),
    quantiles  AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (kind, service, name, series, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.series_daily_mv TO {db}.series_daily AS
SELECT
    toDate(ts) AS day, kind, service, name, series,
    count() AS count,
    countIf(ok = false) AS errors,
    count(value) AS values,
    sum(coalesce(value, 0)) AS sum,
    min(value) AS min,
    max(value) AS max,
    avgState(value) AS avg,
    stddevPopState(value) AS stddev,
    quantilesTDigestState(0.5, 0.95, 0.99)(value) AS quantiles
FROM {db}.events
GROUP BY day, kind, service, name, series;

CREATE TABLE IF NOT EXISTS {db}.workflow_daily
(
    day            Date,
    service        LowCardinality(String),
    workflow       LowCardinality(String),
    runs           SimpleAggregateFunction(sum, UInt64),
    failures       SimpleAggregateFunction(sum, UInt64),
    steps          SimpleAggregateFunction(sum, UInt64),
    step_failures  SimpleAggregateFunction(sum, UInt64),
    recoveries     SimpleAggregateFunction(sum, UInt64),
    recovered      SimpleAggregateFunction(sum, UInt64),
    min_ms         SimpleAggregateFunction(min, Nullable(Float64)),
    max_ms         SimpleAggregateFunction(max, Nullable(Float64)),
    avg_ms         AggregateFunction(avg, Float64),
    stddev_ms      AggregateFunction(stddevPop, Float64),
    quantiles_ms   AggregateFunction(quantilesTDigest(0.5, 0.95, 0.99), Float64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (service, workflow, day)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.workflow_daily_mv TO {db}.workflow_daily AS
SELECT
    toDate(ts) AS day, service, name AS workflow,
    countIf(kind = 'execution.end') AS runs,
    countIf(kind = 'execution.end' AND ok = false) AS failures,
    countIf(kind = 'step.end') AS steps,
    countIf(kind = 'step.end' AND ok = false) AS step_failures,
    countIf(kind = 'recovery') AS recoveries,
    countIf(kind = 'recovery' AND ok = true) AS recovered,
    minIf(value, kind = 'execution.end') AS min_ms,
    maxIf(value, kind = 'execution.end') AS max_ms,
    -- (-If over a Nullable argument skips NULLs and yields a non-Nullable state)
    avgStateIf(value, kind = 'execution.end') AS avg_ms,
    stddevPopStateIf(value, kind = 'execution.end') AS stddev_ms,
    quantilesTDigestStateIf(0.5, 0.95, 0.99)(value, kind = 'execution.end') AS quantiles_ms
FROM {db}.events
WHERE kind IN ('execution.end', 'step.end', 'recovery')
GROUP BY day, service, workflow

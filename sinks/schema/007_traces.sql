-- Spans and log lines, each ordered for how they are read: a trace is read whole by its
-- id; logs are searched by service, level and time, and by text (an n-gram bloom filter
-- on the lower-cased message lets a substring search skip granules).
-- Errors are log lines too (level 'error', name = the error type): a search finds both.
CREATE TABLE IF NOT EXISTS {db}.spans
(
    trace_id      String CODEC(ZSTD(1)),
    ts            DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    span_id       String CODEC(ZSTD(1)),
    parent_id     String CODEC(ZSTD(1)),
    service       LowCardinality(String),
    name          LowCardinality(String),
    duration_ms   Float64 CODEC(Gorilla, ZSTD(1)),
    ok            Bool,
    status        LowCardinality(String),
    message       String CODEC(ZSTD(3)),
    execution_id  String CODEC(ZSTD(1)),
    tags          Map(LowCardinality(String), String),
    attrs         String CODEC(ZSTD(3)),
    INDEX service_idx service TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (trace_id, ts, span_id)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.spans_mv TO {db}.spans AS
SELECT
    trace_id, ts, span_id, parent_id, service, name,
    coalesce(value, 0) AS duration_ms,
    coalesce(ok, status != 'error') AS ok,
    status, message, execution_id, tags, attrs
FROM {db}.events
WHERE kind = 'span';

CREATE TABLE IF NOT EXISTS {db}.logs
(
    ts            DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service       LowCardinality(String),
    level         LowCardinality(String),
    kind          LowCardinality(String),
    name          LowCardinality(String),
    message       String CODEC(ZSTD(3)),
    trace_id      String CODEC(ZSTD(1)),
    span_id       String CODEC(ZSTD(1)),
    execution_id  String CODEC(ZSTD(1)),
    tags          Map(LowCardinality(String), String),
    attrs         String CODEC(ZSTD(3)),
    INDEX message_ngrams lower(message) TYPE ngrambf_v1(3, 65536, 2, 0) GRANULARITY 1,
    INDEX trace_idx trace_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, level, ts)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.logs_mv TO {db}.logs AS
SELECT
    ts, service,
    if(kind = 'error', 'error', level) AS level,
    kind, name, message, trace_id, span_id, execution_id, tags, attrs
FROM {db}.events
WHERE kind IN ('log', 'error')

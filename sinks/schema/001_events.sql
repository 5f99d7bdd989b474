-- Raw events: one row per valid event, exactly once per Kafka offset.
-- (source, partition, offset, idx) locate the event in the Kafka log it came from; the
-- writer skips offsets at or below max(offset) per source and partition on replay.
CREATE TABLE IF NOT EXISTS {db}.events
(
    ts            DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    kind          LowCardinality(String),
    service       LowCardinality(String),
    name          LowCardinality(String),
    series        String CODEC(ZSTD(1)),
    value         Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    ok            Nullable(Bool),
    status        LowCardinality(String),
    execution_id  String CODEC(ZSTD(1)),
    step          LowCardinality(String),
    trace_id      String CODEC(ZSTD(1)),
    span_id       String CODEC(ZSTD(1)),
    parent_id     String CODEC(ZSTD(1)),
    level         LowCardinality(String),
    message       String CODEC(ZSTD(3)),
    tags          Map(LowCardinality(String), String),
    attrs         String CODEC(ZSTD(3)),
    -- true when the event arrived after its window had closed (not in `windows`)
    late          Bool DEFAULT false,
    source        LowCardinality(String),
    partition     UInt16,
    offset        UInt64,
    idx           UInt32
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (kind, service, name, ts)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000

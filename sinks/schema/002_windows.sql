-- Closed tumbling windows, one row per series and window. A replay after a crash may
-- close a window again: ReplacingMergeTree keeps one (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.windows
(
    series        String,
    kind          LowCardinality(String),
    service       LowCardinality(String),
    name          LowCardinality(String),
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    width_s       UInt32,
    partition     UInt16,
    count         UInt64,
    errors        UInt64,
    values        UInt64,
    sum           Float64,
    mean          Nullable(Float64),
    min           Nullable(Float64),
    max           Nullable(Float64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_start)
ORDER BY (kind, service, name, series, width_s, window_start)
SETTINGS non_replicated_deduplication_window = 1000

-- Detector scores, one row per detector and closed window of a series (what the
-- dashboard draws under a series' chart). A replay after a crash may score a window again
-- with the same result: ReplacingMergeTree keeps one (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.anomaly_scores
(
    series      String,
    kind        LowCardinality(String),
    service     LowCardinality(String),
    name        LowCardinality(String),
    detector    LowCardinality(String),
    window      LowCardinality(String),
    window_end  DateTime64(3, 'UTC'),
    value       Nullable(Float64),
    score       Float64,
    threshold   Float64,
    partition   UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(window_end)
ORDER BY (kind, service, name, series, detector, window, window_end)
TTL toDateTime(window_end) + INTERVAL {retention_days} DAY
SETTINGS non_replicated_deduplication_window = 1000

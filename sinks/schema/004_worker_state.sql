-- Checkpoints of the stream workers' window state, one per partition and batch, written
-- after the batch's raw rows and windows. A worker taking over a partition resumes from
-- the newest one (argMax by offset); older ones are merged away.
CREATE TABLE IF NOT EXISTS {db}.worker_state
(
    source     LowCardinality(String),
    partition  UInt16,
    offset     Int64,
    saved_at   DateTime64(3, 'UTC') DEFAULT now64(3),
    state      String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree(offset)
ORDER BY (source, partition)

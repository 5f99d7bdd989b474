-- Windows gain hopping windows (hop_s, part of the key: 5m tumbling and 5m/1m hopping
-- windows share a width), spread and quantiles, and the quantile sketch itself: bucket ->
-- count maps that sumMap merges, so rollups over windows keep their 1% quantile error.
-- (A sort key may only gain a new column without a default: rows written before this
-- migration, all tumbling, read hop_s = 0.)
ALTER TABLE {db}.windows
    ADD COLUMN IF NOT EXISTS window LowCardinality(String) DEFAULT '' AFTER name,
    ADD COLUMN IF NOT EXISTS hop_s UInt32 AFTER width_s,
    ADD COLUMN IF NOT EXISTS error_rate Float64 DEFAULT if(count > 0, errors / count, 0),
    ADD COLUMN IF NOT EXISTS stddev Nullable(Float64),
    ADD COLUMN IF NOT EXISTS p50 Nullable(Float64),
    ADD COLUMN IF NOT EXISTS p95 Nullable(Float64),
    ADD COLUMN IF NOT EXISTS p99 Nullable(Float64),
    ADD COLUMN IF NOT EXISTS sketch_zeros UInt64 DEFAULT 0 CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS sketch_pos Map(Int32, UInt64) CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS sketch_neg Map(Int32, UInt64) CODEC(ZSTD(1)),
    MODIFY ORDER BY (kind, service, name, series, width_s, window_start, hop_s)

-- Alert transitions, one row each: what the alerts topic carries. A replay after a crash
-- may write a transition again before it is published: ReplacingMergeTree keeps one per
-- (rule, series, at, seq) (read with FINAL).
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    id            String,
    fingerprint   String,
    rule          LowCardinality(String),
    type          LowCardinality(String),
    series        String,
    kind          LowCardinality(String),
    service       LowCardinality(String),
    name          LowCardinality(String),
    state         LowCardinality(String),
    previous      LowCardinality(String),
    at            DateTime64(3, 'UTC'),
    started_at    DateTime64(3, 'UTC'),
    value         Nullable(Float64),
    op            LowCardinality(String),
    threshold     Float64,
    score         Nullable(Float64),
    window        LowCardinality(Nullable(String)),
    severity      LowCardinality(String),
    labels        Map(String, String),
    annotations   Map(String, String),
    flapping      Bool,
    silenced      Bool,
    partition     UInt16,
    seq           UInt64,
    evaluated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (rule, series, at, seq)

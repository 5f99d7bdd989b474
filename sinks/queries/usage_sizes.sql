-- Feature uses over [start, end) that gave a data size, per feature and power of ten of
-- the size (bucket 0: below 10, 1: 10 to 99, ...): calls, failures, the sizes' range and
-- mean duration (ms).
SELECT
    tags['feature'] AS feature,
    toUInt8(floor(log10(greatest(JSONExtractFloat(attrs, 'size'), 1)))) AS bucket,
    count() AS calls,
    countIf(ok = false) AS failures,
    min(JSONExtractFloat(attrs, 'size')) AS min_size,
    max(JSONExtractFloat(attrs, 'size')) AS max_size,
    avgIf(JSONExtractFloat(attrs, 'duration_ms'), JSONHas(attrs, 'duration_ms')) AS mean_ms
FROM {db}.events
WHERE kind = 'metric' AND name = 'feature_used' AND JSONHas(attrs, 'size')
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND ({feature:String} = '' OR tags['feature'] = {feature:String})
GROUP BY feature, bucket
ORDER BY feature, bucket
LIMIT {limit:UInt32}

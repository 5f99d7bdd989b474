-- Feature uses over [start, end) per feature and parameter combination (the SDK's
-- ``combo``: the call's named parameters, ``name=value`` in name order; '' when the use
-- named none): calls, failures and durations (ms, from the uses that were timed).
SELECT
    tags['feature'] AS feature,
    JSONExtractString(attrs, 'combo') AS combo,
    count() AS calls,
    countIf(ok = false) AS failures,
    failures / calls AS failure_rate,
    avgIf(JSONExtractFloat(attrs, 'duration_ms'), JSONHas(attrs, 'duration_ms')) AS mean_ms,
    quantileExactInclusiveIf(0.95)(JSONExtractFloat(attrs, 'duration_ms'),
                                   JSONHas(attrs, 'duration_ms')) AS p95_ms
FROM {db}.events
WHERE kind = 'metric' AND name = 'feature_used'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND ({feature:String} = '' OR tags['feature'] = {feature:String})
GROUP BY feature, combo
ORDER BY calls DESC, feature, combo
LIMIT {limit:UInt32}

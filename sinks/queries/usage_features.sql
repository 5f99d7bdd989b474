-- Feature usage (the SDK's feature_used metric) over [start, end): calls, users, sessions.
SELECT
    tags['feature'] AS feature,
    count() AS calls,
    countIf(ok = false) AS failures,
    uniqExactIf(JSONExtractString(attrs, 'user'), JSONExtractString(attrs, 'user') != '') AS users,
    uniqExactIf(JSONExtractString(attrs, 'session'), JSONExtractString(attrs, 'session') != '')
        AS sessions
FROM {db}.events
WHERE kind = 'metric' AND name = 'feature_used'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY feature
ORDER BY calls DESC, feature
LIMIT {limit:UInt32}

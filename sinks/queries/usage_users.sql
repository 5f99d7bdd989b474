-- The most active users over [start, end): calls, features used, sessions.
SELECT
    JSONExtractString(attrs, 'user') AS user,
    count() AS calls,
    uniqExact(tags['feature']) AS features,
    uniqExactIf(JSONExtractString(attrs, 'session'), JSONExtractString(attrs, 'session') != '')
        AS sessions,
    topK(3)(tags['feature']) AS top_features
FROM {db}.events
WHERE kind = 'metric' AND name = 'feature_used'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND user != ''
GROUP BY user
ORDER BY calls DESC, user
LIMIT {limit:UInt32}

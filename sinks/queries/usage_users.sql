-- The most active users over [start, end): calls, features used, sessions.
SELECT
    user,
    count() AS calls,
    uniqExact(feature) AS features,
    uniqExactIf(session, session != '') AS sessions,
    topK(3)(feature) AS top_features
FROM {db}.feature_calls
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND user != ''
GROUP BY user
ORDER BY calls DESC, user
LIMIT {limit:UInt32}

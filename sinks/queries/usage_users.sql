-- The most active users over [start, end): calls, features used, sessions (uniq, as in
-- usage_features). Their top features come from usage_user_features for these users
-- only: topK(3) in this pass cost more than the rest of it together (exploring on
-- bench.sink's 10M events: 64 against 25 ms), and it is approximate.
SELECT
    user,
    count() AS calls,
    uniq(feature) AS features,
    uniqIf(session, session != '') AS sessions
FROM {db}.feature_calls
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND user != ''
GROUP BY user
ORDER BY calls DESC, user
LIMIT {limit:UInt32}

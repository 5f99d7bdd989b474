-- Feature usage over [start, end): calls, failures, users, sessions.
SELECT
    feature,
    count() AS calls,
    countIf(ok = false) AS failures,
    uniqExactIf(user, user != '') AS users,
    uniqExactIf(session, session != '') AS sessions
FROM {db}.feature_calls
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY feature
ORDER BY calls DESC, feature
LIMIT {limit:UInt32}

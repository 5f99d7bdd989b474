-- Feature usage over [start, end): calls, failures, users, sessions. Users and sessions
-- are counted with uniq (hashes of up to 65,536 values, then an adaptive sample: within
-- about 1%), as people and session counts are on usage dashboards: uniqExact cost 20 of
-- usage's 150 ms on bench.sink's 10M events (exploring).
SELECT
    feature,
    count() AS calls,
    countIf(ok = false) AS failures,
    uniqIf(user, user != '') AS users,
    uniqIf(session, session != '') AS sessions
FROM {db}.feature_calls
WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY feature
ORDER BY calls DESC, feature
LIMIT {limit:UInt32}

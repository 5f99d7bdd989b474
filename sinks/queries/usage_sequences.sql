-- The most common runs of `length` consecutive features within one session (or one user
-- when calls carry no session), over [start, end).
SELECT sequence, count() AS occurrences, uniqExact(who) AS sessions
FROM
(
    SELECT who, arraySort((f, t) -> t, groupArray(feature), groupArray(ts)) AS calls
    FROM
    (
        SELECT ts, feature, if(session != '', 'session:' || session, 'user:' || user) AS who
        FROM {db}.feature_calls
        WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
          AND ({service:String} = '' OR service = {service:String})
          AND (session != '' OR user != '')
    )
    GROUP BY who
)
ARRAY JOIN arrayMap(
    i -> arraySlice(calls, i, {length:UInt8}),
    range(1, toUInt32(greatest(length(calls) - {length:UInt8} + 2, 1)))
) AS sequence
GROUP BY sequence
ORDER BY occurrences DESC, sequence
LIMIT {limit:UInt32}

-- The most common runs of `length` consecutive features within one session (or one user
-- when calls carry no session), over [start, end).
SELECT sequence, count() AS occurrences, uniqExact(who) AS sessions
FROM
(
    SELECT
        who,
        arraySort((f, t) -> t, groupArray(feature), groupArray(ts)) AS calls
    FROM
    (
        SELECT
            ts,
            tags['feature'] AS feature,
            if(JSONExtractString(attrs, 'session') != '',
               'session:' || JSONExtractString(attrs, 'session'),
               'user:' || JSONExtractString(attrs, 'user')) AS who
        FROM {db}.events
        WHERE kind = 'metric' AND name = 'feature_used'
          AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
          AND ({service:String} = '' OR service = {service:String})
          AND who NOT IN ('session:', 'user:')
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

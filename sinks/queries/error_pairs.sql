-- Which error types come together over [start, end): errors are grouped by what they
-- belong to (their execution, else their trace, else their service's minute), and each
-- pair of distinct types in one group counts once. With each type's own group count and
-- the number of groups, so that a pair's lift (together / expected if independent) can be
-- computed.
WITH groups AS
(
    SELECT arraySort(groupUniqArray(name)) AS types
    FROM {db}.events
    WHERE kind = 'error'
      AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
    GROUP BY service,
             if(execution_id != '', execution_id,
                if(trace_id != '', trace_id, toString(toStartOfMinute(ts))))
),
totals AS
(
    SELECT arrayJoin(types) AS type, count() AS n FROM groups GROUP BY type
),
pairs AS
(
    SELECT pair.1 AS first, pair.2 AS second, count() AS together
    FROM groups
    ARRAY JOIN arrayFlatten(arrayMap(i -> arrayMap(j -> (types[i], types[j]),
                                                   range(i + 1, length(types) + 1)),
                                     range(1, length(types) + 1))) AS pair
    GROUP BY first, second
)
SELECT
    p.first AS first,
    p.second AS second,
    p.together AS together,
    (SELECT count() FROM groups) AS groups,
    f.n AS first_groups,
    s.n AS second_groups
FROM pairs AS p
INNER JOIN totals AS f ON f.type = p.first
INNER JOIN totals AS s ON s.type = p.second
ORDER BY together DESC, first, second
LIMIT {limit:UInt32}

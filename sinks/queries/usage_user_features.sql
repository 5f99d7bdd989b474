-- The three features each of the given users called most over [start, end), exactly
-- (ties by name).
SELECT
    user,
    arrayMap(
        x -> x.2,
        arraySlice(arraySort(x -> (-x.1, x.2), groupArray((calls, feature))), 1, 3)
    ) AS top_features
FROM
(
    SELECT user, toString(feature) AS feature, count() AS calls
    FROM {db}.feature_calls
    WHERE ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
      AND user IN {users:Array(String)}
    GROUP BY user, feature
)
GROUP BY user

-- Feature uses over [start, end) per feature, parameter and value (each named parameter
-- of a use on its own, its value as raw JSON): calls and failures, and the feature's own
-- calls and failures over the period, so that a value can be compared with its feature.
SELECT
    feature,
    param,
    value,
    count() AS calls,
    countIf(NOT ok) AS failures,
    any(feature_calls) AS feature_calls,
    any(feature_failures) AS feature_failures
FROM
(
    SELECT
        tags['feature'] AS feature,
        coalesce(ok, true) AS ok,
        arrayJoin(JSONExtractKeysAndValuesRaw(attrs, 'params')) AS kv,
        kv.1 AS param,
        kv.2 AS value,
        count() OVER (PARTITION BY tags['feature']) AS feature_calls,
        countIf(NOT coalesce(ok, true)) OVER (PARTITION BY tags['feature']) AS feature_failures
    FROM {db}.events
    WHERE kind = 'metric' AND name = 'feature_used'
      AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
      AND ({service:String} = '' OR service = {service:String})
      AND ({feature:String} = '' OR tags['feature'] = {feature:String})
)
GROUP BY feature, param, value
ORDER BY failures DESC, calls DESC, feature, param, value
LIMIT {limit:UInt32}

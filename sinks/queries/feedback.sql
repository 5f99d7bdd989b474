-- Satisfaction over [start, end) per service, feature and aspect (the SDK's
-- satisfaction_score: every score on 0-1): responses, mean score, the share satisfied
-- (0.75 and up: 4 or 5 of 5), distinct interactions rated, and up to five feedback texts.
SELECT
    service,
    tags['feature'] AS feature,
    tags['aspect'] AS aspect,
    count() AS responses,
    avg(value) AS mean_score,
    countIf(value >= 0.75) / responses AS satisfied_rate,
    uniqExactIf(JSONExtractString(attrs, 'interaction_id'),
                JSONExtractString(attrs, 'interaction_id') != '') AS interactions,
    groupArrayIf(5)(JSONExtractString(attrs, 'feedback'),
                    JSONExtractString(attrs, 'feedback') != '') AS feedback
FROM {db}.events
WHERE kind = 'metric' AND name = 'satisfaction_score'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, feature, aspect
ORDER BY service, feature, aspect
LIMIT {limit:UInt32}

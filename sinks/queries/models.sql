-- Model evaluations over [start, end) per service, model and task (the SDK's
-- model_accuracy): how many, accuracy first, latest, mean and its change, mean confidence,
-- the samples they were judged on and the mean improvement rate reported.
SELECT
    service,
    tags['model'] AS model,
    tags['task'] AS task,
    count() AS evaluations,
    argMin(value, (ts, offset, idx)) AS first_accuracy,
    argMax(value, (ts, offset, idx)) AS latest_accuracy,
    latest_accuracy - first_accuracy AS accuracy_change,
    avg(value) AS mean_accuracy,
    avgIf(JSONExtractFloat(attrs, 'confidence'), JSONHas(attrs, 'confidence')) AS mean_confidence,
    sum(JSONExtractUInt(attrs, 'sample_size')) AS samples,
    avgIf(JSONExtractFloat(attrs, 'improvement_rate'), JSONHas(attrs, 'improvement_rate'))
        AS mean_improvement_rate
FROM {db}.events
WHERE kind = 'metric' AND name = 'model_accuracy'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, model, task
ORDER BY service, model, task
LIMIT {limit:UInt32}

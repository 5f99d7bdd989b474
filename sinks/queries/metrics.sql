-- The metrics each source (service) sent over [start, end), one row per series: its
-- current value (the latest sample) and when, and its samples' count, mean, min and max;
-- its unit and category when the SDK was told them (read only where attrs are set).
SELECT
    service,
    name AS metric,
    series,
    count() AS samples,
    argMax(value, (ts, offset, idx)) AS current,
    max(ts) AS last_at,
    avg(value) AS mean,
    min(value) AS min,
    max(value) AS max,
    argMaxIf(JSONExtractString(attrs, 'unit'), (ts, offset, idx), attrs != '') AS unit,
    argMaxIf(JSONExtractString(attrs, 'category'), (ts, offset, idx), attrs != '') AS category
FROM {db}.events
WHERE kind = 'metric'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, metric, series
ORDER BY service, metric, series
LIMIT {limit:UInt32}

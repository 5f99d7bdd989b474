-- Optimizations over [start, end) (the SDK's optimization_change_pct), the latest report
-- of each: its feature and category, the figure before and after, the change in % of
-- before, how much users felt it (0-1) and its unit.
SELECT
    service,
    tags['feature'] AS feature,
    tags['category'] AS category,
    JSONExtractString(attrs, 'optimization_id') AS optimization_id,
    argMax(JSONExtractFloat(attrs, 'before'), (ts, offset, idx)) AS before,
    argMax(JSONExtractFloat(attrs, 'after'), (ts, offset, idx)) AS after,
    argMax(value, (ts, offset, idx)) AS change_pct,
    argMax(if(JSONHas(attrs, 'user_impact'), JSONExtractFloat(attrs, 'user_impact'), NULL),
           (ts, offset, idx))
        AS user_impact,
    argMax(JSONExtractString(attrs, 'unit'), (ts, offset, idx)) AS unit,
    max(ts) AS at
FROM {db}.events
WHERE kind = 'metric' AND name = 'optimization_change_pct'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, feature, category, optimization_id
ORDER BY at DESC, service, feature, category, optimization_id
LIMIT {limit:UInt32}

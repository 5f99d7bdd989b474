-- Errors over [start, end) per service, type, severity and impact (what the SDK's error()
-- was told; '' when it was not): how many, how many had a recovery tried, how many
-- recovered, and the share recovered of those tried.
SELECT
    service,
    name AS type,
    JSONExtractString(attrs, 'severity') AS severity,
    JSONExtractString(attrs, 'impact') AS impact,
    count() AS errors,
    countIf(JSONExtractBool(attrs, 'recovery_attempted')) AS recovery_attempted,
    countIf(JSONExtractBool(attrs, 'recovered')) AS recovered,
    if(recovery_attempted > 0, recovered / recovery_attempted, NULL) AS recovery_rate
FROM {db}.events
WHERE kind = 'error'
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, type, severity, impact
ORDER BY errors DESC, service, type, severity, impact
LIMIT {limit:UInt32}

-- The time of the latest marker (a log line or error named `marker`, e.g. "deploy")
-- at or before `until`.
SELECT max(ts) AS at, count() AS seen
FROM {db}.logs
WHERE name = {marker:String} AND ts <= {until:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})

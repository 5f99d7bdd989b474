-- The runtimes services reported over [start, end) (a client publishes its runtime once
-- when it starts: the log line {name}), per service and distinct runtime (Python,
-- platform, revision): how many process starts, on how many hosts, first and last seen,
-- and the newest report whole.
SELECT
    service,
    JSONExtractString(attrs, 'python') AS python,
    JSONExtractString(attrs, 'platform') AS platform,
    JSONExtractString(attrs, 'revision') AS revision,
    count() AS starts,
    uniqExact(JSONExtractString(attrs, 'host')) AS hosts,
    min(ts) AS first_seen,
    max(ts) AS last_seen,
    argMax(attrs, (ts, offset, idx)) AS latest
FROM {db}.events
WHERE kind = 'log'
  AND name = {name:String}
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
GROUP BY service, python, platform, revision
ORDER BY service, last_seen DESC
LIMIT {limit:UInt32}

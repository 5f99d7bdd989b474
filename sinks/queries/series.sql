-- One series over [start, end) in buckets of step_s seconds: {agg} is one of the
-- aggregates in sinks.history.AGGREGATES (never user text). kind/service/name come from
-- the series key so the primary key (kind, service, name, ts) narrows the scan; an empty
-- series (the key was only kind|service|name) takes every series of that name.
SELECT
    toStartOfInterval(ts, toIntervalSecond({step_s:UInt32})) AS t,
    count() AS count,
    {agg} AS value
FROM {db}.events
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND ({series:String} = '' OR series = {series:String})
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
GROUP BY t
ORDER BY t
LIMIT {limit:UInt32}

-- The series of one kind, service and name with windows in (start, end]: what a chart of
-- a key without (or with other) tags offers to choose from.
SELECT DISTINCT series
FROM {db}.windows
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND window_end > {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
ORDER BY series
LIMIT 50

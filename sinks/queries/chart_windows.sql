-- The closed windows of one series over (start, end]: what its live chart draws, one
-- point per window, at the window's end.
SELECT
    window_end AS t, {figures}
FROM {db}.windows FINAL
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND series = {series:String} AND window = {window:String}
  AND window_end > {start:DateTime64(3)} AND window_end <= {end:DateTime64(3)}
ORDER BY t
LIMIT {limit:UInt32}

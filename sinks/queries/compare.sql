-- One series before [start, at) and after [at, end) a marker: count, mean, variance,
-- p50 and p95 of each side (the change and its significance are computed from these).
SELECT
    countIf(ts < {at:DateTime64(3)}) AS before_n,
    avgIf(value, ts < {at:DateTime64(3)}) AS before_mean,
    varSampIf(value, ts < {at:DateTime64(3)}) AS before_var,
    quantileExactInclusiveIf(0.5)(value, ts < {at:DateTime64(3)}) AS before_p50,
    quantileExactInclusiveIf(0.95)(value, ts < {at:DateTime64(3)}) AS before_p95,
    countIf(ts >= {at:DateTime64(3)}) AS after_n,
    avgIf(value, ts >= {at:DateTime64(3)}) AS after_mean,
    varSampIf(value, ts >= {at:DateTime64(3)}) AS after_var,
    quantileExactInclusiveIf(0.5)(value, ts >= {at:DateTime64(3)}) AS after_p50,
    quantileExactInclusiveIf(0.95)(value, ts >= {at:DateTime64(3)}) AS after_p95
FROM {db}.events
WHERE kind = {kind:String} AND service = {service:String} AND name = {name:String}
  AND ({series:String} = '' OR series = {series:String}) AND value IS NOT NULL
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}

-- What executions used over [start, end), per workflow: the figures the SDK measures
-- around an execution (``producers.measure``) and reports on its end. CPU time and
-- memory peaks as mean, p95 and max; disk and network bytes as mean and max.
SELECT
    service,
    name AS workflow,
    count() AS measured,
    avg(JSONExtractFloat(attrs, 'cpu_ms')) AS cpu_ms_mean,
    quantileExactInclusive(0.95)(JSONExtractFloat(attrs, 'cpu_ms')) AS cpu_ms_p95,
    max(JSONExtractFloat(attrs, 'cpu_ms')) AS cpu_ms_max,
    avg(JSONExtractFloat(attrs, 'rss_peak_bytes')) AS rss_peak_bytes_mean,
    quantileExactInclusive(0.95)(JSONExtractFloat(attrs, 'rss_peak_bytes')) AS rss_peak_bytes_p95,
    max(JSONExtractFloat(attrs, 'rss_peak_bytes')) AS rss_peak_bytes_max,
    avg(JSONExtractFloat(attrs, 'rss_after_bytes') - JSONExtractFloat(attrs, 'rss_before_bytes'))
        AS rss_growth_bytes_mean,
    avg(JSONExtractFloat(attrs, 'io_read_bytes')) AS io_read_bytes_mean,
    max(JSONExtractFloat(attrs, 'io_read_bytes')) AS io_read_bytes_max,
    avg(JSONExtractFloat(attrs, 'io_write_bytes')) AS io_write_bytes_mean,
    max(JSONExtractFloat(attrs, 'io_write_bytes')) AS io_write_bytes_max,
    avg(JSONExtractFloat(attrs, 'net_rx_bytes')) AS net_rx_bytes_mean,
    max(JSONExtractFloat(attrs, 'net_rx_bytes')) AS net_rx_bytes_max,
    avg(JSONExtractFloat(attrs, 'net_tx_bytes')) AS net_tx_bytes_mean,
    max(JSONExtractFloat(attrs, 'net_tx_bytes')) AS net_tx_bytes_max
FROM {db}.events
WHERE kind = 'execution.end'
  AND JSONHas(attrs, 'cpu_ms')
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
  AND ({service:String} = '' OR service = {service:String})
  AND ({workflow:String} = '' OR name = {workflow:String})
GROUP BY service, workflow
ORDER BY service, workflow
LIMIT {limit:UInt32}

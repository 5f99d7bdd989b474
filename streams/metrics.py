"""The worker's own metrics in the Prometheus text format.

:func:`metrics_text` renders a :class:`Snapshot` through ``prometheus_client`` (the
reference implementation of the format: escaping, HELP/TYPE lines, histograms);
:class:`Latency` is a cumulative histogram of the sink's insert times.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset

#: Seconds: ClickHouse inserts take milliseconds to seconds (a retried one, longer).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Latency:
    """A cumulative histogram (Prometheus semantics) of durations in seconds."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


@dataclass
class Snapshot:
    """The worker's figures at one moment (what /metrics renders)."""

    counts: Mapping[str, int]
    events_per_s: float
    #: Per partition held: messages in Kafka past the last one applied.
    lag: Mapping[int, int]
    #: Windows open in memory, over the partitions held.
    open_windows: int
    firing: int
    sink_counts: Mapping[str, int]
    sink_latency: Latency
    sink_failing: bool
    uptime_s: float
    assigned: int
    sink_inserting: bool = False
    #: Events forwarded to their series' partition, per partition they arrived on.
    rerouted: Mapping[int, int] = field(default_factory=dict)


#: Counters of the worker: metric name, help, the key in ``Snapshot.counts``.
COUNTERS = (
    ("vigil_events_valid", "Events decoded, checked and applied to windows.", "valid"),
    ("vigil_events_rejected", "Events sent to the dead-letter topic.", "rejected"),
    ("vigil_deadletter", "Messages sent to the dead-letter topic.", "rejected"),
    ("vigil_events_late", "Events that came after their window had closed.", "late"),
    ("vigil_raw_rows", "Raw event rows stored in ClickHouse.", "raw_rows"),
    ("vigil_windows_closed", "Windows closed and stored.", "windows_closed"),
    ("vigil_alert_transitions", "Alert transitions published.", "alerts"),
    ("vigil_replayed_messages", "Kafka messages seen again after a restart.", "replayed_messages"),
    (
        "vigil_rerouted_repeats",
        "Forwarded events skipped because their partition had applied them (a replay "
        "forwarded them again).",
        "rerouted_repeats",
    ),
    (
        "vigil_state_gaps",
        "Messages that did not follow the last one applied to the window state (the ones "
        "between never reached the windows): should stay 0.",
        "state_gaps",
    ),
    (
        "vigil_takeover_retries",
        "Tries to load the state of partitions a batch needs that failed and were made "
        "again (the store or the broker did not answer); the batch waited meanwhile.",
        "takeover_retries",
    ),
    (
        "vigil_reread_messages",
        "Messages read again because the consumer started a partition taken over past "
        "its checkpoint (a rebalance dropped messages it had fetched, or the group's "
        "offsets were set past it).",
        "reread_messages",
    ),
    (
        "vigil_reread_retries",
        "Reads of such messages that failed (the broker did not answer) and went on from "
        "where they stopped; the batch waited meanwhile.",
        "reread_retries",
    ),
)


class _Collector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.s = snapshot

    def collect(self) -> Iterator[Any]:
        s = self.s
        for name, doc, key in COUNTERS:
            yield CounterMetricFamily(name, doc, value=s.counts.get(key, 0))
        lag = GaugeMetricFamily(
            "vigil_consumer_lag",
            "Messages in Kafka past the last one applied, per events partition held.",
            labels=["partition"],
        )
        for partition, n in sorted(s.lag.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        rerouted = CounterMetricFamily(
            "vigil_events_rerouted",
            "Events forwarded to their series' partition, per partition they arrived on "
            "(published without the routing key: README, Event schema).",
            labels=["partition"],
        )
        for partition, n in sorted(s.rerouted.items()):
            rerouted.add_metric([str(partition)], n)
        yield rerouted
        gauges = (
            (
                "vigil_consumer_lag_total",
                "Consumer lag over the partitions held.",
                sum(s.lag.values()),
            ),
            ("vigil_events_per_second", "Events handled per second, recent.", s.events_per_s),
            ("vigil_open_windows", "Windows open in memory.", s.open_windows),
            ("vigil_alerts_firing", "Alerts firing here.", s.firing),
            ("vigil_partitions_assigned", "Events partitions held.", s.assigned),
            ("vigil_uptime_seconds", "Seconds since the worker started.", s.uptime_s),
            ("vigil_sink_failing", "1 while a ClickHouse insert is retried.", int(s.sink_failing)),
            ("vigil_sink_inserting", "1 while a ClickHouse insert runs.", int(s.sink_inserting)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value)
        sink = (
            ("vigil_sink_inserts", "ClickHouse inserts acknowledged.", "inserts"),
            (
                "vigil_sink_insert_retries",
                "ClickHouse inserts failed and retried.",
                "insert_retries",
            ),
        )
        for name, doc, key in sink:
            yield CounterMetricFamily(name, doc, s.sink_counts.get(key, 0))
        yield HistogramMetricFamily(
            "vigil_sink_insert_seconds",
            "Time from an insert's first try to its acknowledgement.",
            buckets=s.sink_latency.cumulative(),
            sum_value=s.sink_latency.sum,
        )


def metrics_text(snapshot: Snapshot) -> bytes:
    """``snapshot`` in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot))
    return generate_latest(registry)

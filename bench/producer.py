"""What the producer SDK costs its host, and how fast it gets events to the broker.

1. Caller-side cost: each ``metric()`` call is timed on its own (perf_counter_ns) while
   the sender runs between chunks, as it would in a host; median and p99 in µs. The same
   for no-op functions under each decorator, against the bare no-op, in the same run.
2. Send rate: N ``metric()`` events from one process, from the first call until the
   broker acknowledged the last (acks=all), for the async and the sync client; the events
   are then read back and counted. Baseline: a bare aiokafka producer sending the same
   number of events, pre-encoded into envelopes of the same size, in the same process.

3. Shutdown with the broker down: how long ``close(timeout=1.0)`` (and the sync client's
   ``flush(0.5)`` then ``close(1.0)``) take with nothing listening (the tests only check
   that they return).

Targets (issue 4): under 5 µs median per call, at least 200,000 events/s to the broker.
The process CPU time per event is printed too: on a shared machine it moves less than
wall-clock rates do.

    python -m bench.producer --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.report import emit, progress
from producers import Client, ProducerSettings, SyncClient
from producers.envelopes import HEADERS
from producers.topics import Topics, ensure_topics
from tests.topics import read_records
from vigil.embedded import EmbeddedBroker, free_port

ROUTES = [f"/r{i}" for i in range(16)]


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    median = ordered[len(ordered) // 2] / 1000
    p99 = ordered[int(len(ordered) * 0.99)] / 1000
    return round(median, 3), round(p99, 3)


async def caller_cost(settings: ProducerSettings, calls: int) -> dict[str, Any]:
    """Per-call cost of metric() and of decorated no-ops, with the sender running."""
    out: dict[str, Any] = {}
    clock = time.perf_counter_ns
    async with Client(settings) as vigil:
        timer = []
        for _ in range(calls):
            t0 = clock()
            timer.append(clock() - t0)
        out["timer_overhead_us"] = _percentiles(timer)[0]
        samples = []
        metric = vigil.metric
        for i in range(calls):
            route = ROUTES[i & 15]
            t0 = clock()
            metric("latency_ms", 12.5, {"route": route})
            samples.append(clock() - t0)
            if i % 1000 == 999:
                await asyncio.sleep(0)
        out["metric_median_us"], out["metric_p99_us"] = _percentiles(samples)

        def noop(x: int) -> int:
            return x

        bare = []
        for i in range(calls):
            t0 = clock()
            noop(i)
            bare.append(clock() - t0)
        out["bare_noop_median_us"] = _percentiles(bare)[0]
        for name in ("monitor_performance", "track_usage", "track_errors"):
            decorated = getattr(vigil, name)()(noop)
            samples = []
            for i in range(calls):
                t0 = clock()
                decorated(i)
                samples.append(clock() - t0)
                if i % 1000 == 999:
                    await asyncio.sleep(0)
            median, p99 = _percentiles(samples)
            out[f"{name}_noop_median_us"] = median
            out[f"{name}_noop_p99_us"] = p99
            out[f"{name}_vs_bare"] = round(median / max(out["bare_noop_median_us"], 1e-3), 1)
        # An execution of one step: as before (measure off), and measuring what it used.
        for label, measure in (("plain", False), ("measured", True)):
            samples = []
            for i in range(calls // 10):
                t0 = clock()
                with vigil.execution("bench", measure=measure) as run, run.step("s"):
                    pass
                samples.append(clock() - t0)
                if i % 100 == 99:
                    await asyncio.sleep(0)
            out[f"execution_{label}_median_us"] = _percentiles(samples)[0]
        out["execution_measured_vs_plain"] = round(
            out["execution_measured_median_us"] / out["execution_plain_median_us"], 2
        )
        await vigil.flush(60)
    return out


class _Timed:
    """Wall clock and process CPU from construction until :meth:`result`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.cpu = time.process_time()
        self.started = time.perf_counter()

    def result(self, stats: dict[str, Any]) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu
        assert stats["sent"] == self.n and stats["dropped"] == 0, stats
        return {
            "events_per_s": self.n / elapsed,
            "envelopes": stats["envelopes"],
            "cpu_us_per_event": cpu / self.n * 1e6,
        }


async def send_async(settings: ProducerSettings, n: int) -> dict[str, Any]:
    async with Client(settings) as vigil:
        high = settings.queue_max_events * 3 // 4
        timed = _Timed(n)
        for i in range(n):
            vigil.metric("latency_ms", float(i), {"route": ROUTES[i & 15]})
            if i % 1000 == 999:
                await asyncio.sleep(0)  # a host's loop turns
                while vigil._sender.queued > high:  # a host outrunning the broker backs off
                    await asyncio.sleep(0.001)
            if i % 50_000 == 0:
                progress("async client", i, n, timed.started)
        assert await vigil.flush(120)
        return timed.result(vigil.stats())


def send_sync(settings: ProducerSettings, n: int) -> dict[str, Any]:
    with SyncClient(settings) as vigil:
        high = settings.queue_max_events * 3 // 4
        timed = _Timed(n)
        for i in range(n):
            vigil.metric("latency_ms", float(i), {"route": ROUTES[i & 15]})
            if i % 1000 == 999 and vigil._sender.queued > high:
                while vigil._sender.queued > high:
                    time.sleep(0.001)
            if i % 50_000 == 0:
                progress("sync client", i, n, timed.started)
        assert vigil.flush(120)
        return timed.result(vigil.stats())


async def send_bare(settings: ProducerSettings, n: int, per_envelope: int) -> dict[str, Any]:
    """The transport alone: aiokafka sending pre-encoded envelopes with acks=all."""
    topics = Topics.for_namespace(settings.namespace)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.events_partitions)
    line = orjson.dumps(
        {
            "kind": "metric",
            "ts": 1_800_000_000_000,
            "service": "app",
            "name": "latency_ms",
            "value": 12345.0,
            "tags": {"route": "/r1"},
        }
    )
    envelope = b"\n".join([line] * per_envelope)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for i in range(n // per_envelope):
            futures.append(
                await producer.send(
                    topics.events,
                    envelope,
                    partition=i % settings.events_partitions,
                    headers=HEADERS,
                )
            )
            if len(futures) >= 64:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {"events_per_s": n / elapsed}


async def close_when_down(port: int) -> dict[str, float]:
    """Seconds the clients' ``close(timeout=1.0)`` (and the sync ``flush(0.5)`` before it)
    take with no broker at all: the host waits that long at shutdown, never more."""
    down = ProducerSettings(
        kafka_bootstrap=f"127.0.0.1:{port}", namespace="down", resource_interval_s=0,
        send_timeout_ms=2000, linger_ms=10,
    )  # fmt: skip
    client = await Client(down).start()
    for i in range(100):
        client.metric("m", float(i))
    started = time.perf_counter()
    await client.close(timeout=1.0)
    async_s = time.perf_counter() - started
    sync = SyncClient(down).start()
    for i in range(100):
        sync.metric("m", float(i))
    started = time.perf_counter()
    sync.flush(timeout=0.5)
    sync.close(timeout=1.0)
    return {
        "async_close_s_broker_down_timeout_1": round(async_s, 3),
        "sync_flush_close_s_broker_down_timeouts_1_5": round(time.perf_counter() - started, 3),
    }


async def count_on_topic(settings: ProducerSettings, expected: int) -> int:
    topic = Topics.for_namespace(settings.namespace).events
    records = await read_records(
        settings.kafka_bootstrap,
        topic,
        expected,
        timeout=120,
        weight=lambda r: r.value.count(b"\n") + 1,
    )
    return sum(r.value.count(b"\n") + 1 for r in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200_000, help="timed calls per measure")
    args = parser.parse_args()
    n = args.events
    log_path = Path(tempfile.mkdtemp(prefix="vigil-bench-")) / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        base = ProducerSettings(
            kafka_bootstrap=broker.bootstrap,
            namespace="bench",
            resource_interval_s=0,
            capture_runtime=False,
        )

        def ns(name: str) -> ProducerSettings:
            return dataclasses.replace(base, namespace=f"bench-{name}")

        print("caller-side cost ...", file=sys.stderr)
        cost = asyncio.run(caller_cost(ns("cost"), args.calls))
        sent_async = asyncio.run(send_async(ns("async"), n))
        delivered = asyncio.run(count_on_topic(ns("async"), n))
        sent_sync = send_sync(ns("sync"), n)
        per_envelope = round(n / sent_async["envelopes"])
        bare = asyncio.run(send_bare(ns("bare"), n, per_envelope))
    closing = asyncio.run(close_when_down(free_port()))
    assert not any(t.name == "vigil-sender" for t in threading.enumerate())
    result = {
        "events": n,
        **cost,
        "async_client_events_per_s": round(sent_async["events_per_s"]),
        "sync_client_events_per_s": round(sent_sync["events_per_s"]),
        # Process CPU (all threads) per event, host loop included: steadier than wall time
        # on a shared machine; 1e6 / it is the rate a free core would reach.
        "async_client_cpu_us_per_event": round(sent_async["cpu_us_per_event"], 2),
        "sync_client_cpu_us_per_event": round(sent_sync["cpu_us_per_event"], 2),
        "delivered_events_read_back": delivered,
        "events_per_envelope": per_envelope,
        "baseline_bare_aiokafka_events_per_s": round(bare["events_per_s"]),
        "async_vs_baseline": round(sent_async["events_per_s"] / bare["events_per_s"], 3),
        "sync_vs_baseline": round(sent_sync["events_per_s"] / bare["events_per_s"], 3),
        **closing,
    }
    emit(result)
    if delivered < n:
        raise SystemExit(f"only {delivered} of {n} events are on the topic")


if __name__ == "__main__":
    main()

"""End-to-end throughput: producer -> Kafka -> worker -> ClickHouse, against a baseline.

1. publish N events through ``producers.Client`` (a backlog on the topic): metric
   samples spread over ``--series`` distinct series across ten minutes of event time,
   plus one simulated workflow engine's events (every tenth event) for live tracking;
2. baseline: a bare aiokafka consumer reads the same topic and orjson-decodes every event;
3. a ``vigil worker`` drains the backlog into chDB; the clock runs from its first processed
   batch to the last (its start-up time is reported apart).

Both rates come from the same run on the same data, so their ratio is meaningful on a
noisy machine. Prints JSON, then a table.

Windows ``1m,5m,5m/1m`` with sketches, and live execution tracking, are on. Run it for
1,000 and for 100,000 series:

    python -m bench.pipeline --events 1000000 --series 1000
    python -m bench.pipeline --events 1000000 --series 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from bench.report import emit, progress
from producers.client import Client
from producers.envelopes import split
from producers.settings import ProducerSettings
from producers.topics import Topics
from sinks.settings import StoreSettings
from sinks.store import open_client
from vigil.demo import worker_stats
from vigil.embedded import EmbeddedBroker, free_port, spawn, stop
from vigil.simulation import Simulation

SPAN_MS = 10 * 60_000


def make_events(n: int, series: int) -> list[dict]:
    """``n`` events: metric samples over ``series`` series, every tenth a workflow event."""
    start = int(time.time() * 1000) - 6 * 3600_000
    sim = Simulation(seed=1, start_ms=start, requests_per_s=1)
    workflow = [e for e in sim.advance(SPAN_MS) if e["kind"] != "metric"]
    rng = random.Random(1)
    events: list[dict] = []
    for i in range(n):
        if i % 10 == 0 and workflow:
            events.append(workflow[(i // 10) % len(workflow)])
            continue
        events.append(
            {
                "kind": "metric",
                "ts": start + i * SPAN_MS // n,
                "service": "api",
                "name": "latency_ms",
                "value": rng.lognormvariate(3, 1),
                "ok": rng.random() > 0.02,
                "tags": {"host": f"h{i % series}"},
            }
        )
    return events


async def publish(settings: ProducerSettings, events: list[dict]) -> dict[str, float]:
    n = len(events)
    async with Client(settings) as pub:
        started = time.perf_counter()
        for i, event in enumerate(events):
            while not pub.publish(event):  # the buffer is full: let the sender drain it
                await asyncio.sleep(0.005)
            if i % 20_000 == 0:
                progress("publish", i, n, started)
                await asyncio.sleep(0)
        await pub.flush(120)
        elapsed = time.perf_counter() - started
        stats = pub.stats()
    print(file=sys.stderr)
    assert stats["sent"] == n, stats
    return {"seconds": elapsed, "events_per_s": n / elapsed, "envelopes": stats["envelopes"]}


async def baseline(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    for line in split(record.value):
                        orjson.loads(line)
                        seen += 1
            progress("baseline", seen, n, started)
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {"seconds": elapsed, "events_per_s": n / elapsed}


def run_worker(env: dict[str, str], n: int, log_path: Path) -> dict[str, float]:
    port = free_port()
    token = secrets.token_urlsafe(16)
    spawned = time.time()
    proc = spawn(
        [sys.executable, "-m", "vigil.cli", "worker"],
        env={**env, "VIGIL_WEB_PORT": str(port), "VIGIL_API_TOKEN": token},
        log_path=log_path,
    )
    peak_rss_mb = 0.0
    began = time.perf_counter()
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"worker exited with {proc.returncode}; see {log_path}")
            s = worker_stats(port, token) or {}
            progress("worker (incl. start-up)", s.get("valid", 0), n, began)
            if s.get("valid", 0) >= n:
                break
            time.sleep(0.2)
        status = Path(f"/proc/{proc.pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_rss_mb = int(line.split()[1]) / 1024
    finally:
        code = stop(proc, timeout=60)
    print(file=sys.stderr)
    assert code == 0, f"worker exit code {code}"
    # The worker's own clock: from its first batch received to its last batch stored.
    busy = s["last_batch_at"] - s["first_batch_at"]
    return {
        "ready_seconds": s["first_batch_at"] - spawned,
        "seconds": busy,
        "events_per_s": n / max(busy, 1e-9),
        "peak_rss_mb": peak_rss_mb,
        "rerouted": sum(s.get("rerouted_from", {}).values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=1_000, help="distinct metric series")
    args = parser.parse_args()
    n = args.events
    events = make_events(n, args.series)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    namespace = f"bench{os.getpid()}"
    external = os.environ.get("VIGIL_KAFKA_BOOTSTRAP", "")
    broker = None if external else EmbeddedBroker(log_path=workdir / "broker.log").start()
    bootstrap = external or broker.bootstrap  # type: ignore[union-attr]
    try:
        settings = ProducerSettings(
            kafka_bootstrap=bootstrap,
            namespace=namespace,
            queue_max_events=200_000,
            resource_interval_s=0,
        )
        produced = asyncio.run(publish(settings, events))
        del events
        topic = Topics.for_namespace(namespace).events
        base = asyncio.run(baseline(bootstrap, topic, n))
        env = dict(
            os.environ,
            VIGIL_KAFKA_BOOTSTRAP=bootstrap,
            VIGIL_NAMESPACE=namespace,
            VIGIL_DATA_DIR=str(workdir / "data"),
            VIGIL_WINDOWS="1m,5m,5m/1m",
        )
        worker = run_worker(env, n, workdir / "worker.log")
        store = StoreSettings(
            data_dir=workdir / "data", clickhouse_dsn=os.environ.get("VIGIL_CLICKHOUSE_DSN", "")
        )
        client = open_client(store)
        try:
            stored = client.query(f"SELECT count() FROM {store.database}.events").result_rows[0][0]
        finally:
            client.close()
    finally:
        if broker is not None:
            broker.stop()
    result = {
        "events": n,
        "series": args.series,
        "stored_rows": int(stored),
        "producer_events_per_s": round(produced["events_per_s"]),
        "baseline_consumer_events_per_s": round(base["events_per_s"]),
        "pipeline_events_per_s": round(worker["events_per_s"]),
        "pipeline_vs_baseline": round(worker["events_per_s"] / base["events_per_s"], 3),
        "worker_ready_seconds": round(worker["ready_seconds"], 2),
        "worker_peak_rss_mb": round(worker["peak_rss_mb"], 1),
        "envelopes": produced["envelopes"],
    }
    emit(result)
    if stored != n:
        raise SystemExit(f"stored {stored} rows for {n} events")


if __name__ == "__main__":
    main()

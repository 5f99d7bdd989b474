"""Alert latency: from a window's close to its transition on the alerts topic.

A ``vigil worker`` (embedded broker, chDB) watches ``--series`` live metric series with
10 s windows and one threshold rule; each series alternates between a high and a low
level every window, so closes keep making transitions (until flap damping holds them).
A subscriber reads the alerts topic and, per transition, measures:

- ``close``: from the moment the worker evaluated the closed window (``evaluated_at``)
  to the subscriber receiving the transition: store, publish and fetch;
- ``due``: from the earliest moment the window could close (its end plus the grace) to
  receipt: adds batching and the watermark's wait for the next event.

Baseline, same run: a message produced with aiokafka (acks=all) and read back by the
same kind of consumer, the broker's own round trip. Target: ``close`` p99 under 500 ms.

    python -m bench.alerts --seconds 60 --series 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.report import emit
from producers.alerts import subscribe_alerts
from producers.client import Client
from producers.settings import ProducerSettings
from vigil.demo import worker_stats
from vigil.embedded import EmbeddedBroker, free_port, spawn, stop

GRACE_S = 1
RULES = """
[[rule]]
name = "bench_high"
match = { kind = "metric", name = "bench_level" }
signal = "mean"
window = "10s"
op = ">"
threshold = 50
"""


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan")}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1)}


async def feed(settings: ProducerSettings, series: int, seconds: float) -> int:
    """Samples of every series, 5 a second each, at a level that flips every window."""
    sent = 0
    async with Client(settings) as pub:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            now = int(time.time() * 1000)
            for s in range(series):
                high = ((now // 10_000) + s) % 2 == 0
                pub.metric("bench_level", 90.0 if high else 10.0, {"s": str(s)}, ts=now)
                sent += 1
            await asyncio.sleep(0.2)
        await pub.flush(30)
    return sent


async def collect(bootstrap: str, namespace: str, out: list[tuple[float, float]]) -> None:
    async for alert in subscribe_alerts(bootstrap, namespace=namespace):
        received = time.time() * 1000
        out.append((received - alert.evaluated_at, received - (alert.at + GRACE_S * 1000)))


async def baseline(bootstrap: str, n: int = 200) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer("bench.ping", bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait("bench.ping", b"warm")
    await consumer.start()
    await consumer.seek_to_end()
    out = []
    try:
        for _ in range(n):
            sent = time.time() * 1000
            await producer.send_and_wait("bench.ping", str(sent).encode())
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                values = [m.value for ms in batch.values() for m in ms]
                if str(sent).encode() in values:
                    out.append(time.time() * 1000 - sent)
                    break
            await asyncio.sleep(0.02)
    finally:
        await consumer.stop()
        await producer.stop()
    return out


async def measure(bootstrap: str, series: int, seconds: float, workdir: Path) -> dict:
    namespace = "benchalerts"
    rules = workdir / "rules.toml"
    rules.write_text(RULES)
    port = free_port()
    env = dict(
        os.environ,
        VIGIL_KAFKA_BOOTSTRAP=bootstrap,
        VIGIL_NAMESPACE=namespace,
        VIGIL_DATA_DIR=str(workdir / "data"),
        VIGIL_WINDOWS="10s",
        VIGIL_GRACE_SECONDS=str(GRACE_S),
        VIGIL_RULES=str(rules),
        VIGIL_WEB_PORT=str(port),
        VIGIL_BATCH_SECONDS="0.1",
        VIGIL_API_TOKEN=(token := secrets.token_urlsafe(16)),
    )
    proc = spawn([sys.executable, "-m", "vigil.cli", "worker"], env=env, log_path=workdir / "w.log")
    try:
        while (worker_stats(port, token) or {}).get("assigned") in (None, []):
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited: see {workdir / 'w.log'}")
            await asyncio.sleep(0.5)
        settings = ProducerSettings(kafka_bootstrap=bootstrap, namespace=namespace, linger_ms=5)
        seen: list[tuple[float, float]] = []
        reader = asyncio.create_task(collect(bootstrap, namespace, seen))
        await asyncio.sleep(2)  # the subscriber is at the end of the topic
        print(f"  feeding {series} series for {seconds:.0f} s ...", file=sys.stderr)
        sent = await feed(settings, series, seconds)
        await asyncio.sleep(GRACE_S + 3)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        base = await baseline(bootstrap)
    finally:
        stop(proc)
    close, due, base_q = (
        quantiles([c for c, _ in seen]),
        quantiles([d for _, d in seen]),
        quantiles(base),
    )
    return {
        "series": series,
        "samples_sent": sent,
        "transitions": len(seen),
        "close_to_topic_p50_ms": close["p50"],
        "close_to_topic_p99_ms": close["p99"],
        "due_to_topic_p50_ms": due["p50"],
        "due_to_topic_p99_ms": due["p99"],
        "broker_round_trip_p50_ms": base_q["p50"],
        "broker_round_trip_p99_ms": base_q["p99"],
        "close_p99_vs_round_trip_p99": round(close["p99"] / base_q["p99"], 2),
        "target_close_p99_under_500_ms": close["p99"] < 500,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--series", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        emit(asyncio.run(measure(broker.bootstrap, args.series, args.seconds, Path(tmp))))


if __name__ == "__main__":
    main()

"""What a hop costs: a worker draining events published on their series' partition against
the same events published unkeyed (most of them forwarded once to their series' partition).

Every input is published by librdkafka (confluent-kafka), in two shapes:

- one event per Kafka message, as a service in another language publishes: keyed by
  ``producers.events.routing_key`` under the ``murmur2_random`` partitioner (the
  README's advice), or with no key at all;
- envelopes of 500 events (JSON lines), as the SDK sends them: each on the partition of
  its events' series, or on any partition.

The same events go to four namespaces of one broker; a ``vigil worker`` drains each in
turn, from its first batch to the last event applied. Prints JSON, then a table.

    python -m bench.rerouting --events 200000 --series 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from bench.pipeline import make_events, run_workers
from bench.report import emit, progress
from producers.envelopes import EnvelopeBuilder
from producers.events import partition_for, routing_key
from producers.settings import ProducerSettings
from producers.topics import Topics, ensure_topics
from vigil.embedded import EmbeddedBroker

WAYS = ("messages keyed", "messages unkeyed", "envelopes keyed", "envelopes unkeyed")
ENVELOPE = 500
PARTITIONS = ProducerSettings().events_partitions


def publish(bootstrap: str, topic: str, events: list[dict], way: str) -> None:
    """Publish ``events`` one of the :data:`WAYS`."""
    keyed = way.endswith("keyed") and not way.endswith("unkeyed")
    config = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20}
    if keyed:
        config["partitioner"] = "murmur2_random"
    producer = Producer(config)
    started = time.perf_counter()

    def send(value: bytes, **where: Any) -> None:
        while True:
            try:
                producer.produce(topic, value, **where)
                return
            except BufferError:
                producer.poll(0.05)

    builder = EnvelopeBuilder(max_events=ENVELOPE, max_bytes=1 << 20)
    for i, event in enumerate(events):
        key = routing_key(event)
        line = orjson.dumps(event)
        if not way.startswith("envelopes"):
            send(line, key=key if keyed else None)
        else:
            # On the event's partition, or (unkeyed) all on one: partition 0 is as wrong
            # as a random one for three series in four.
            closed = builder.add(partition_for(key, PARTITIONS) if keyed else 0, line)
            if closed is not None:
                send(closed[0], partition=partition_for(key, PARTITIONS) if keyed else 0)
        if i % 20_000 == 0:
            producer.poll(0)
            progress(f"publish {way}", i, len(events), started)
    for partition, envelope, _ in builder.drain():
        send(envelope, partition=partition)
    if producer.flush(120):
        raise SystemExit("not every event was delivered")
    print(file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--series", type=int, default=1_000, help="distinct metric series")
    args = parser.parse_args()
    n = args.events
    events = make_events(n, args.series)
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-rerouting-"))
    broker = EmbeddedBroker(log_path=workdir / "broker.log").start()
    rates, rerouted = {}, {}
    try:
        for way in WAYS:
            namespace = f"hop{way.replace(' ', '')}{os.getpid()}"
            settings = ProducerSettings(kafka_bootstrap=broker.bootstrap, namespace=namespace)
            topics = Topics.for_namespace(namespace)
            asyncio.run(ensure_topics(broker.bootstrap, topics, settings.events_partitions))
            publish(broker.bootstrap, topics.events, events, way)
            env = dict(
                os.environ,
                VIGIL_KAFKA_BOOTSTRAP=broker.bootstrap,
                VIGIL_NAMESPACE=namespace,
                VIGIL_WINDOWS="1m,5m,5m/1m",
            )
            run = workdir / way.replace(" ", "-")  # its worker's data and log
            run.mkdir()
            worker = run_workers(env, n, run, 1)
            rates[way] = worker["events_per_s"]
            rerouted[way] = worker["rerouted"]
    finally:
        broker.stop()
    result: dict[str, Any] = {"events": n, "series": args.series}
    for shape in ("messages", "envelopes"):
        keyed, unkeyed = rates[f"{shape} keyed"], rates[f"{shape} unkeyed"]
        result[f"{shape}_keyed_events_per_s"] = round(keyed)
        result[f"{shape}_unkeyed_events_per_s"] = round(unkeyed)
        result[f"{shape}_unkeyed_vs_keyed"] = round(unkeyed / keyed, 3)
        result[f"{shape}_keyed_rerouted"] = rerouted[f"{shape} keyed"]
        result[f"{shape}_unkeyed_rerouted"] = rerouted[f"{shape} unkeyed"]
    emit(result)


if __name__ == "__main__":
    main()

"""Publishing as a service in another language does: librdkafka (confluent-kafka), one
event of Vigil's JSON per Kafka message, keyed however the service chooses."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from confluent_kafka import Producer

from producers.events import partition_for, routing_key
from producers.topics import Topics

#: The README's advice to other-language producers: the routing key, hashed as Kafka's
#: Java client does (librdkafka's own default, ``consistent_random``, is CRC32).
KEYED = {"partitioner": "murmur2_random"}


def producer(settings: Any, **config: Any) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "acks": "all",
            "log_level": 2,  # not the disconnect notices of a broker stopped after the test
            **config,
        }
    )


def publish(
    settings: Any,
    events: Iterable[dict[str, Any]],
    *,
    key: Callable[[dict[str, Any]], str | None],
    config: dict[str, Any] | None = None,
    extra_lines: Iterable[bytes] = (),
) -> list[int]:
    """Publish ``events`` (then ``extra_lines`` as they are), each keyed by ``key``;
    the partition each event landed on, from librdkafka's delivery reports."""
    topic = Topics.for_namespace(settings.namespace).events
    out = producer(settings, **(config or {}))
    landed: dict[int, int] = {}

    def reporter(i: int) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            assert err is None, err
            landed[i] = msg.partition()

        return report

    n = 0
    for n, event in enumerate(events, 1):
        out.produce(topic, orjson.dumps(event), key=key(event), on_delivery=reporter(n - 1))
        out.poll(0)
    for line in extra_lines:
        out.produce(topic, line)
    assert out.flush(60) == 0, "not every message was delivered"
    return [landed[i] for i in range(n)]


def home(event: dict[str, Any], partitions: int) -> int:
    """The partition of an event's series (its routing key, Kafka's default partitioner)."""
    return partition_for(routing_key(event), partitions)


def away(events: list[dict[str, Any]], landed: list[int], partitions: int) -> collections.Counter:
    """Per partition, the events that landed there and belong elsewhere."""
    return collections.Counter(
        p for event, p in zip(events, landed, strict=True) if p != home(event, partitions)
    )


def publish_clocks(settings: Any, at_ms: int) -> None:
    """One metric event at ``at_ms`` on each events partition, keyed right: every
    partition's event time moves to ``at_ms`` (windows before it minus the grace close)."""
    partitions = settings.events_partitions
    clocks = []
    for p in range(partitions):
        name = next(
            f"clock{k}" for k in range(1000) if home(_clock(f"clock{k}", 0), partitions) == p
        )
        clocks.append(_clock(name, at_ms))
    landed = publish(settings, clocks, key=routing_key, config=KEYED)
    assert landed == list(range(partitions))


def _clock(name: str, ts: int) -> dict[str, Any]:
    return {"kind": "metric", "ts": ts, "service": "clock", "name": name, "value": 0}

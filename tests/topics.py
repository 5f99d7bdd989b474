"""Reading a topic back, as any consumer of Vigil's topics would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from producers.envelopes import split
from producers.topics import Topics, ensure_topics


async def read_records(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float = 30,
    weight: Callable[[Any], int] = lambda record: 1,
) -> list[Any]:
    """Every record of ``topic``: reads until the records' ``weight`` adds up to
    ``expected``, then 1.5 s longer so that duplicates beyond it would show up too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 << 20,  # dead letters of 1 MB lines
    )
    await consumer.start()
    out: list[Any] = []
    seen = 0
    try:
        deadline = time.monotonic() + timeout
        while seen < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
                seen += sum(weight(r) for r in records)
        extra = await consumer.getmany(timeout_ms=1500)
        out.extend(r for records in extra.values() for r in records)
    finally:
        await consumer.stop()
    return out


async def read_events(
    bootstrap: str, topic: str, expected: int, timeout: float = 30
) -> list[tuple[int, dict[str, Any]]]:
    """``(partition, event)`` for every event in the envelopes of an events topic."""
    records = await read_records(
        bootstrap, topic, expected, timeout, weight=lambda r: len(split(r.value))
    )
    return [(r.partition, orjson.loads(line)) for r in records for line in split(r.value)]


async def committed(settings: Any, topic: str) -> int:
    """Messages the worker group of ``settings.namespace`` has committed on ``topic``, over
    all partitions (offsets start at 0 on a fresh topic)."""
    async with _group(settings, topic) as (consumer, tps):
        return sum([await consumer.committed(tp) or 0 for tp in tps])


async def positions(settings: Any, topic: str) -> dict[int, tuple[int, int]]:
    """Each partition of ``topic``: (the offset the worker group of ``settings.namespace``
    committed, the log's end offset)."""
    async with _group(settings, topic) as (consumer, tps):
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (await consumer.committed(tp) or 0, ends[tp]) for tp in tps}


@contextlib.asynccontextmanager
async def _group(
    settings: Any, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A consumer in the worker group of ``settings.namespace`` (it joins nothing: it
    only reads the group's offsets), and the partitions of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"{settings.namespace}-worker"
    )
    await consumer.start()
    try:
        yield consumer, [TopicPartition(topic, p) for p in range(settings.events_partitions)]
    finally:
        await consumer.stop()


async def wait_committed(
    settings: Any, envelopes: int, *, timeout: float, state: Callable[[], Any] = lambda: None
) -> None:
    """Until the worker group has committed ``envelopes`` messages of the events topic
    (within ``timeout`` seconds, else an assertion with what ``state()`` says)."""
    topic = Topics.for_namespace(settings.namespace).events
    deadline = time.monotonic() + timeout
    while (done := await committed(settings, topic)) < envelopes:
        assert time.monotonic() < deadline, (done, envelopes, state())
        await asyncio.sleep(0.5)


async def read_log(settings: Any, messages: int) -> list[Any]:
    """The ``messages`` records of the events topic of ``settings.namespace``, in offset
    order per partition."""
    topic = Topics.for_namespace(settings.namespace).events
    records = await read_records(settings.kafka_bootstrap, topic, messages)
    assert len(records) == messages, (len(records), messages)
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def append_log(settings: Any, records: list[Any]) -> int:
    """Append ``records`` to the same partitions of the events topic of
    ``settings.namespace``, one at a time and in order: a copy of another log with the
    same envelopes in the same order. (The SDK may send a retried envelope after newer
    ones, and which events come late depends on that order: two runs compared window by
    window must read the same log.)"""
    topics = Topics.for_namespace(settings.namespace)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.events_partitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(
                topics.events, r.value, key=r.key, partition=r.partition, headers=list(r.headers)
            )
    finally:
        await producer.stop()
    return len(records)

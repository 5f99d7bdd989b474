"""Reading a stretch of a partition again, past the worker's own consumer.

A worker's consumer starts a partition it takes over at the group's committed offset.
When the first message it hands over lies past that offset and past the checkpoint
(``streams.runtime`` checks), the messages between were fetched and dropped: Faust's
stream drops, unacknowledged, what arrives while a rebalance has stopped its flow or
with the fetch generation before the rebalance's, and its consumer does not fetch them
again. They are read here, on a consumer of their own, without moving the worker's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

#: The longest wait, in seconds, for the next records before a read counts as failed
#: (the caller tries again).
READ_SECONDS = 60.0


async def read_range(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    options: dict[str, Any],
    *,
    group: str | None = None,
    most: int = 500,
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """The records of ``topic``'s ``partition`` at offsets ``start`` to ``end`` - 1, in
    order, in parts of at most ``most``; with ``group``, from that consumer group's
    committed offset when it is past ``start`` (where its consumers start; this one only
    reads it). Offsets the log no longer holds (deleted by retention) or never held a
    record at (a transaction's marker) are left out, so fewer can come, or none.
    ``options``: the connection's security settings (``KafkaSettings.kafka_options``).
    Raises ``TimeoutError`` when no record came for :data:`READ_SECONDS` while some are
    still to come."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a start the log no longer holds: from its first
        max_partition_fetch_bytes=16 << 20,  # an envelope of up to the broker's limit
        **options,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        if group is not None:
            start = max(start, await consumer.committed(tp) or 0)
        consumer.seek(tp, start)
        while True:
            async with asyncio.timeout(READ_SECONDS):
                if await consumer.position(tp) >= end:
                    return
                fetched: list[ConsumerRecord[bytes, bytes]] = []
                while not fetched and await consumer.position(tp) < end:
                    got = await consumer.getmany(tp, timeout_ms=1000, max_records=most)
                    fetched = [r for r in got.get(tp, ()) if r.offset < end]
            if fetched:
                yield fetched
    finally:
        await consumer.stop()


def acknowledge(consumer: Any, record: ConsumerRecord[bytes, bytes]) -> None:
    """Acknowledge ``record``, read again, to the worker's Faust ``consumer`` as if its
    stream had handed it over: the group commits past it once every message before it is
    acknowledged too (until then, the commit stays at the first one not acknowledged)."""
    consumer.ack(
        faust.types.Message(
            record.topic, record.partition, record.offset, record.timestamp / 1000,
            record.timestamp_type, record.headers, record.key, record.value, None,
        )
    )  # fmt: skip

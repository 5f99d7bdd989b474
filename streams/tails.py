"""What a worker reads of the alerts topic when it takes over a partition: the highest
transition ``seq`` already published there, so that a replay publishes none twice."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from producers.alerts import Alert, read_from


async def published_seqs(
    bootstrap: str,
    topic: str,
    partitions: set[int],
    *,
    options: Mapping[str, Any] | None = None,
) -> dict[int, int]:
    """Per partition of ``partitions``, the highest ``seq`` among its newest transitions
    (0: none); ``options``: connection options (``KafkaSettings.kafka_options``)."""
    tails = await last_published(bootstrap, topic, partitions, options=options)
    return {p: max((_seq(line, p) for line in tails.get(p, [])), default=0) for p in partitions}


async def last_published(
    bootstrap: str,
    topic: str,
    partitions: set[int],
    *,
    back: int = 50,
    options: Mapping[str, Any] | None = None,
) -> dict[int, list[bytes]]:
    """The newest messages (at least the last ``back``) of each of ``partitions``;
    ``options``: connection options (``KafkaSettings.kafka_options``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **(options or {})
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - back))
        out: dict[int, collections.deque[bytes]] = {
            p: collections.deque(maxlen=back) for p in partitions
        }
        async for message in read_from(consumer, tps, ends=ends):
            out[message.partition].append(message.value)
        return {p: list(values) for p, values in out.items()}
    finally:
        await consumer.stop()


def _seq(line: bytes, partition: int) -> int:
    """The ``seq`` of a transition of ``partition`` (0: not one)."""
    try:
        alert = Alert.decode(line)
    except msgspec.DecodeError:
        return 0
    return alert.seq if alert.partition == partition else 0

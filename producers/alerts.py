"""Reading the alerts topic: ``async for alert in subscribe_alerts(...)``.

Each message is one alert transition as JSON (the README's "Alerts" section documents
every field). Delivery is at least once: the subscriber drops a transition it has
already yielded (by ``id``), so a consumer sees each one once per run.

>>> alert = Alert.decode(b'{"v":1,"id":"ab-1","fingerprint":"ab","rule":"slow",'
...     b'"type":"threshold","series":"metric|api|lat","kind":"metric","service":"api",'
...     b'"name":"lat","state":"firing","previous":"pending","at":60000,"started_at":0,'
...     b'"value":900.0,"op":">","threshold":500.0,"score":null,"window":"1m",'
...     b'"severity":"warning","labels":{},"annotations":{},"channels":null,'
...     b'"flapping":false,"silenced":false,"partition":0,"seq":1,"evaluated_at":61000}')
>>> (alert.rule, alert.state, alert.value)
('slow', 'firing', 900.0)
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from producers.topics import Topics

log = logging.getLogger(__name__)


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert transition, as the alerts topic carries it (version 1).

    The stream stage makes these (streams.evaluation) and the SDK reads them: the one
    definition of the message lives here, where both can import it.
    ``(partition, seq)`` numbers the transitions of one partition in the order they were
    made; ``fingerprint`` names the alert (its rule and series); ``id`` is both.
    """

    v: int = 1
    id: str
    fingerprint: str
    rule: str
    #: "threshold", "absence" or "detector".
    type: str
    series: str
    kind: str
    service: str
    name: str
    state: str
    previous: str
    #: Event time of the evaluation (the window's end, or the sample's time), ms.
    at: int
    started_at: int
    value: float | None
    op: str
    threshold: float
    score: float | None
    window: str | None
    severity: str
    labels: dict[str, str]
    annotations: dict[str, str]
    channels: list[str] | None
    flapping: bool
    silenced: bool = False
    partition: int
    seq: int
    #: Wall-clock time the worker made the transition, ms.
    evaluated_at: int

    @classmethod
    def decode(cls, data: bytes) -> Alert:
        return _DECODER.decode(data)

    def line(self) -> bytes:
        """The JSON message."""
        return _ENCODER.encode(self)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


_DECODER = msgspec.json.Decoder(Alert)
_ENCODER = msgspec.json.Encoder()


async def read_from(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    *,
    idle_ms: int = 500,
    ends: Mapping[TopicPartition, int] | None = None,
    timeout_s: float = 30.0,
) -> AsyncIterator[Any]:
    """Every message from the consumer's positions up to the end, then stop.

    The end of a partition is the high watermark of the last fetch, and at least ``ends``
    (the broker's end offsets: the embedded broker's ListOffsets can answer the base offset
    of the last batch + 1, under the real end, so they are a lower bound). A fetch that
    stays empty for ``idle_ms`` ends the read only once every partition is there: on a
    loaded machine the first fetch can come back empty before the broker has answered (which
    once made a worker taking over a partition miss the transitions already published, and
    publish them again). Past ``timeout_s`` it stops anyway.
    """
    lower = dict(ends or {})
    deadline = time.monotonic() + timeout_s
    while True:
        batch = await consumer.getmany(*partitions, timeout_ms=idle_ms)
        for messages in batch.values():
            for message in messages:
                yield message
        if batch:
            continue
        behind = False
        for tp in partitions:
            end = max(lower.get(tp, 0), consumer.highwater(tp) or 0)
            if await consumer.position(tp) < end:
                behind = True
        if not behind or time.monotonic() > deadline:
            return


async def subscribe_alerts(
    bootstrap: str,
    *,
    namespace: str = "vigil",
    group: str | None = None,
    from_beginning: bool = False,
    include_silenced: bool = False,
    remember: int = 10_000,
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[Alert]:
    """Alert transitions as they are published.

    - ``group``: a consumer group, so that a restarted subscriber resumes where it
      stopped: each alert's offset is committed once the consumer asks for the next one
      (it was handled), whatever the fetch's batches. The last alert before the consumer
      stopped comes again (stopping and a handler that raised look the same from here):
      at least once, never lost. Without a group, every partition is read from the end
      (or from the beginning).
    - Silenced transitions are skipped unless ``include_silenced``.
    - A message that is not a valid alert is logged and skipped.
    - ``options``: connection options, e.g. ``ProducerSettings.from_env().kafka_options()``
      for SASL and TLS.
    """
    topic = Topics.for_namespace(namespace).alerts
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning or group else "latest",
        **(options or {}),
    )
    await consumer.start()
    seen: collections.OrderedDict[str, None] = collections.OrderedDict()
    try:
        if group is not None:
            consumer.subscribe([topic])
        else:
            tps = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
            consumer.assign(tps)
            if from_beginning:
                await consumer.seek_to_beginning(*tps)
            else:  # the end, wherever the broker says it is: skip what is there already
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    consumer.seek(tp, ends[tp])
                async for _ in read_from(consumer, tps, idle_ms=300, ends=ends):
                    pass
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for message in messages:
                    try:
                        alert = Alert.decode(message.value)
                    except msgspec.DecodeError as exc:
                        log.warning("vigil: skipped a message that is not an alert: %s", exc)
                        continue
                    if alert.id in seen or (alert.silenced and not include_silenced):
                        continue
                    seen[alert.id] = None
                    if len(seen) > remember:
                        seen.popitem(last=False)
                    yield alert
                    if group is not None:  # handled: the group resumes after it
                        tp = TopicPartition(message.topic, message.partition)
                        await consumer.commit({tp: message.offset + 1})
            if group is not None and batch:  # and past what was skipped
                await consumer.commit()
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer.topics()  # refreshes metadata: the topic may be a moment old
        await asyncio.sleep(0.1)
    raise LookupError(f"topic {topic} does not exist: is a Vigil worker running?")

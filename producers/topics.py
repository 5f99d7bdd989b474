"""Topic names, versioned, in one place, and what each one carries.

| topic                     | key            | value                                              |
| ------------------------- | -------------- | -------------------------------------------------- |
| ``<ns>.events.v1``        | routing key or | an envelope: events as JSON lines (see envelopes); |
|                           | none           | header ``vigil-hop`` on envelopes the worker       |
|                           |                | forwarded to their series' partition (routing)     |
| ``<ns>.deadletter.v1``    | none           | the original bytes of one rejected event (or an    |
|                           |                | OTLP item, as JSON); headers                       |
|                           |                | ``vigil-reason``, ``vigil-source-topic``,          |
|                           |                | ``vigil-source-partition``, ``vigil-source-offset``|
|                           |                | and ``vigil-source-index`` say why and whence      |
| ``<ns>.windows.v2``       | none           | closed windows as JSON lines in envelopes, on the  |
|                           |                | partition of their series, times in ms             |
|                           |                | (``window_start_ms``, ``window_end_ms``,           |
|                           |                | ``hop_ms``; v1 carried the table's rows, in        |
|                           |                | seconds); at least once: a replay after a crash    |
|                           |                | may repeat a window, and ``(series, window,        |
|                           |                | window_end_ms)`` identifies it                     |
| ``<ns>.alerts.v1``        | fingerprint    | one alert transition as JSON (README: "Alerts"), on|
|                           |                | the partition of its series; ``(partition, seq)``  |
|                           |                | numbers them, replays publish none twice           |
| ``<ns>.control.v1``       | none           | silences and acknowledgements as JSON, read whole  |
|                           |                | by every worker (1 partition)                      |

The events topic is partitioned by routing key (see :func:`producers.events.routing_key`);
an event published elsewhere is forwarded to its partition once (``streams.routing``).
The number of partitions bounds how many workers share the load.

>>> Topics.for_namespace("vigil").events
'vigil.events.v1'
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


@dataclass(frozen=True)
class Topics:
    events: str
    deadletter: str
    windows: str
    alerts: str
    control: str

    @classmethod
    def for_namespace(cls, namespace: str) -> Topics:
        return cls(
            events=f"{namespace}.events.v1",
            deadletter=f"{namespace}.deadletter.v1",
            windows=f"{namespace}.windows.v2",
            alerts=f"{namespace}.alerts.v1",
            control=f"{namespace}.control.v1",
        )


def deadletter_headers(
    reason: str, topic: str, partition: int | None, offset: int | None, index: int
) -> dict[str, bytes]:
    """The headers of a dead letter: why, and where its bytes came from (``partition``
    and ``offset`` None when they came from no Kafka log, e.g. an OTLP request).

    >>> deadletter_headers("bad", "t", 0, 7, 2)["vigil-source-offset"]
    b'7'
    """
    headers = {"vigil-reason": reason.encode(), "vigil-source-topic": topic.encode()}
    if partition is not None and offset is not None:
        headers["vigil-source-partition"] = str(partition).encode()
        headers["vigil-source-offset"] = str(offset).encode()
    headers["vigil-source-index"] = str(index).encode()
    return headers


async def ensure_topics(
    bootstrap: str,
    topics: Topics,
    events_partitions: int,
    options: Mapping[str, Any] | None = None,
) -> int:
    """Create the topics that do not exist yet (idempotent, safe to race); the events
    topic's partition count (``events_partitions`` unless it existed with another).
    ``options``: connection options (:meth:`ProducerSettings.kafka_options`), here and
    below."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(options or {})
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(topics.events, events_partitions, 1),
            NewTopic(topics.deadletter, 1, 1),
            NewTopic(topics.windows, events_partitions, 1),
            NewTopic(topics.alerts, events_partitions, 1),
            NewTopic(topics.control, 1, 1),
        ]
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            # Another process may create one between list and create: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            # Metadata of a new topic reaches clients a moment later.
            await asyncio.sleep(0.2)
        described = await admin.describe_topics([topics.events])
        found = [t for t in described if t.get("topic") == topics.events]
        count = len(found[0].get("partitions") or ()) if found else 0
        return count or events_partitions
    finally:
        await admin.close()


async def cluster_id(bootstrap: str, options: Mapping[str, Any] | None = None) -> str:
    """The Kafka cluster id: offsets are only comparable within one cluster's log.

    The embedded broker gets a new id at each start (it forgets everything), so rows
    stored from an earlier broker never shadow the offsets of a new one.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=10_000, **(options or {})
    )
    await client.bootstrap()
    try:
        response = await client.send(client.get_random_node(), MetadataRequest([], False))
        return str(response.cluster_id or "unknown-cluster")
    finally:
        await client.close()

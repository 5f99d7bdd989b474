"""The broker goes away under a publishing service and comes back: the SDK keeps at most
``VIGIL_QUEUE_MAX_EVENTS`` buffered, refuses and counts what does not fit, never blocks
the service, and delivers everything it accepted."""

from __future__ import annotations

import asyncio
import collections

import pytest

from producers.client import Client
from producers.settings import ProducerSettings
from producers.topics import Topics
from tests.topics import read_events
from vigil.embedded import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]

BOUND = 1500


async def test_the_sdk_buffers_within_its_bound_counts_drops_and_delivers_the_rest(tmp_path):
    port = free_port()
    settings = ProducerSettings(
        kafka_bootstrap=f"127.0.0.1:{port}",
        namespace="brokerdown",
        resource_interval_s=0,
        capture_runtime=False,
        send_timeout_ms=2000,
        linger_ms=10,
        queue_max_events=BOUND,
    )
    topic = Topics.for_namespace(settings.namespace).events
    accepted: list[tuple[str, float]] = []
    ticks = 0

    async def host_loop() -> None:  # the publishing service's own work
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    host = asyncio.create_task(host_loop())
    with EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log") as broker:
        async with Client(settings) as vigil:
            for i in range(1000):
                assert vigil.metric("before", float(i))
                accepted.append(("before", float(i)))
            assert await vigil.flush(30)
            broker.pause()  # down for its clients, topics kept (as Kafka across a restart)
            try:
                refused = 0
                for i in range(BOUND + 1000):
                    if vigil.metric("during", float(i)):
                        accepted.append(("during", float(i)))
                    else:
                        refused += 1
                    if i % 250 == 0:
                        await asyncio.sleep(0.1)
                stats = vigil.stats()
                assert ticks > 20, "the service's loop kept running"
                assert stats["queued"] <= BOUND
                # What did not fit was refused at once (publish returned False) and counted.
                assert refused == stats["dropped"] and refused > 500
            finally:
                broker.resume()
            assert await vigil.flush(60)
            stats = vigil.stats()
        events = await read_events(broker.bootstrap, topic, len(accepted), timeout=60)
    host.cancel()
    delivered = collections.Counter((e["name"], e["value"]) for _, e in events)
    assert set(delivered) == set(accepted)  # everything accepted, nothing refused
    assert stats["sent"] == len(accepted) and stats["dropped"] == refused
    assert sum(delivered.values()) - len(accepted) <= stats["retried"]  # at least once

"""Messages a worker's stream took and dropped, never acknowledged, as Faust's stream
does in a rebalance (``tests/faults/dropping/sitecustomize.py`` makes it drop the first
messages of each partition): the worker reads them again. Every event is stored once,
every window equals a recount of its raw rows, alert transitions are stored and
published once, the group commits to the end of the log, and exactly the dropped
messages were read again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.client import Client
from tests.conftest import handovers, open_store
from tests.faults.common import exactly_once, fault_env
from tests.samples import simulated
from tests.topics import wait_committed

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 20_000
DROPPED = 3
HOOK = Path(__file__).parent / "dropping"


async def _publish(kafka_settings, events: list) -> int:
    async with Client(kafka_settings) as pub:
        for event in events:
            assert pub.publish(event)
        assert await pub.flush(60)
        return int(pub.stats()["envelopes"])


async def test_messages_the_stream_dropped_are_read_again_and_committed_past(
    kafka_settings, start_worker, tmp_path
):
    """A first worker commits half the log; the second one's stream drops the first
    messages after that commit. (Faust holds its commit at the first message not
    acknowledged only once the group has committed: from no commit it jumps to the first
    run of acknowledged offsets.)"""
    events = simulated(N, seed=47, minutes=20)
    data = tmp_path / "data"
    env = {"VIGIL_DATA_DIR": str(data), **fault_env(tmp_path)}
    envelopes = await _publish(kafka_settings, events[: N // 2])
    first = start_worker(**env)
    await wait_committed(kafka_settings, envelopes, timeout=120, state=first.stats)
    assert first.stop() == 0
    envelopes += await _publish(kafka_settings, events[N // 2 :])
    path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH")) if p)
    worker = start_worker(PYTHONPATH=path, VIGIL_FAULT_DROP_FIRST=str(DROPPED), **env)
    # Faust commits past a message only once it and every one before it are
    # acknowledged: the messages read again must be, in place of those dropped.
    await wait_committed(kafka_settings, envelopes, timeout=120, state=worker.stats)
    stats = worker.stats() or {}
    assert worker.stop() == 0
    assert stats.get("reread_messages") == 4 * DROPPED, (stats, handovers(worker))
    assert worker.state_gaps() == [] and stats.get("state_gaps", 0) == 0
    with open_store(data) as ch:
        await exactly_once(ch, kafka_settings, N)

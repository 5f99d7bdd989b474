"""A worker SIGKILLed again and again while events flow, and restarted each time.

Kills come right after a checkpoint (the stored offsets just moved), mid-batch (while
messages are being counted) and during a ClickHouse insert (``/stats`` names the table
while one runs). After the last restart the
worker reads to the end. Then: raw rows equal the acknowledged events exactly once,
every closed window equals a recount of its raw rows, no alert transition is stored
twice, and none is on the alerts topic twice.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
from pathlib import Path

import pytest

from tests.conftest import open_store
from tests.faults.common import exactly_once, fault_env, publish_steadily, wait_for_moment
from tests.samples import simulated
from tests.topics import wait_committed

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 45_000
KILLS = 6


async def test_repeated_sigkills_lose_nothing_and_duplicate_nothing(
    kafka_settings, start_worker, tmp_path
):
    events = simulated(N, seed=41, minutes=30)
    data = tmp_path / "kills"
    env = {
        "VIGIL_DATA_DIR": str(data),
        **fault_env(tmp_path),
    }
    rng = random.Random(5)
    publishing = asyncio.create_task(publish_steadily(kafka_settings, events, per_second=1500))
    kinds = collections.Counter()
    for k in range(KILLS):
        worker = start_worker(**env)
        before = worker.wait_until(lambda s: len(s.get("assigned", [])) > 0, timeout=60)
        wanted = ("after a checkpoint", "mid-batch", "during an insert")[k % 3]
        seen = await asyncio.to_thread(wait_for_moment, worker, wanted, before, rng)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        kinds[seen] += 1
    envelopes = await publishing
    last = start_worker(**env)
    await asyncio.to_thread(last.wait_until, lambda s: len(s.get("assigned", [])) == 4, 60)
    await wait_committed(kafka_settings, envelopes, timeout=240, state=last.stats)
    assert last.stop() == 0
    assert kinds["after a checkpoint"] and kinds["mid-batch"] and kinds["during an insert"], kinds

    with open_store(Path(data)) as ch:
        published = await exactly_once(ch, kafka_settings, N)
    print(f"\n{N} events, {KILLS} kills {dict(kinds)}, {published} alert transitions")

"""Two workers share the partitions and one store; one is SIGKILLed, then the other.

The store is one chDB directory served by ``sinks.chserver`` (ClickHouse's HTTP
interface), so both worker processes write to the same tables as they would to a
ClickHouse server. Each kill happens while events flow; the survivor takes the dead
worker's partitions over (its log says so for each of them, with the offsets it resumed
from), and the killed worker comes back and takes its share again. Then: raw rows equal
the acknowledged events exactly once, every closed window equals a recount of its raw
rows, and no alert transition is stored or published twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal

import pytest

from tests.conftest import handovers
from tests.faults.common import exactly_once, fault_env, publish_steadily, wait_for_moment
from tests.samples import simulated
from tests.topics import wait_committed

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 40_000


def _assigned(worker) -> set[int]:
    return set((worker.stats() or {}).get("assigned", []))


def _checkpointed_all(stats: dict) -> bool:
    owned = {str(p) for p in stats.get("assigned", [])}
    return bool(owned) and owned <= set(stats.get("offsets", {}))


def _taken_over(worker, since: int) -> dict[int, tuple[int, int]]:
    """Partition -> (state offset, raw rows stored to) for each partition ``worker`` took
    over from the store after character ``since`` of its log."""
    found = re.findall(
        r"partition (\d+) taken over: state at offset (-?\d+), raw rows stored to (-?\d+)",
        worker.log()[since:],
    )
    return {int(p): (int(state), int(raw)) for p, state, raw in found}


async def test_two_workers_one_killed_at_a_time_hand_over_and_totals_stay_exact(
    kafka_settings, start_worker, shared_store, tmp_path
):
    events = simulated(N, seed=43, minutes=30)
    env = {
        "VIGIL_CLICKHOUSE_DSN": shared_store.dsn,
        **fault_env(tmp_path),
    }
    everyone = []

    def worker():
        # Each process a data directory of its own; the store is shared.
        everyone.append(start_worker(VIGIL_DATA_DIR=str(tmp_path / f"w{len(everyone)}"), **env))
        return everyone[-1]

    workers = [worker(), worker()]
    for w in workers:
        await asyncio.to_thread(w.wait_until, lambda s: len(s.get("assigned", [])) > 0, 60)
    split = [_assigned(w) for w in workers]
    assert not split[0] & split[1] and split[0] | split[1] == {0, 1, 2, 3}, split

    rng = random.Random(7)
    publishing = asyncio.create_task(publish_steadily(kafka_settings, events, per_second=1000))
    handed_over = []
    for victim, moment in ((0, "during an insert"), (1, "after a checkpoint")):
        dead, survivor = workers[victim], workers[1 - victim]
        # Killed once it has checkpointed each of its partitions, so that the survivor
        # resumes them from the dead worker's state rather than from the start.
        before = await asyncio.to_thread(dead.wait_until, _checkpointed_all, 60)
        seen = await asyncio.to_thread(wait_for_moment, dead, moment, before, rng)
        lost = _assigned(dead)
        assert lost, "the victim owned partitions when it was killed"
        since = len(survivor.log())
        os.kill(dead.proc.pid, signal.SIGKILL)
        dead.proc.wait()

        def took_all(stats, survivor=survivor, lost=lost, since=since) -> bool:
            return len(stats.get("assigned", [])) == 4 and lost <= set(_taken_over(survivor, since))

        await asyncio.to_thread(survivor.wait_until, took_all, 60)
        resumed = _taken_over(survivor, since)
        # The dead worker had stored something of each: its partitions resume mid-log.
        assert all(resumed[p][0] >= 0 and resumed[p][1] >= 0 for p in lost), resumed
        handed_over.append((seen, {p: resumed[p] for p in sorted(lost)}))
        workers[victim] = worker()  # comes back and takes its share again
        await asyncio.to_thread(
            workers[victim].wait_until, lambda s: len(s.get("assigned", [])) > 0, 60
        )
    envelopes = await publishing

    await wait_committed(
        kafka_settings, envelopes, timeout=240, state=lambda: [w.stats() for w in workers]
    )
    shares = [_assigned(w) for w in workers]
    for w in workers:
        assert w.stop() == 0
    assert all(shares), f"both workers owned partitions at the end: {shares}"
    gaps = [line for w in everyone for line in w.state_gaps()]
    assert gaps == [], (
        "every partition resumed its state where the processing had stopped:\n"
        + "\n".join([*gaps, *handovers(*everyone)[-120:]])
    )

    with shared_store.client() as ch:
        published = await exactly_once(ch, kafka_settings, N)
    print(f"\n{N} events, {published} alert transitions, handed over: {handed_over}")

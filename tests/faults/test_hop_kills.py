"""A worker SIGKILLed after it forwarded events to their series' partition and before it
checkpointed the partition they arrived on, three times: each new worker replays that
partition and forwards the same events again. Each must be applied once: raw rows
exactly once, windows equal to a recount both ways, late flags as the rule says.

The killed workers checkpoint only every 60 s, and ``/stats`` shows events forwarded
(counted once their forwards were delivered) while no partition has a checkpoint yet:
the kill comes between forwarding and checkpoint by construction.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests import librdkafka
from tests.conftest import open_store
from tests.recount import assert_recounted
from tests.samples import simulated

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 12_000
KILLS = 3
GRACE_S = 3600  # covers the burst's 10 event-time minutes in any order


async def test_events_forwarded_again_after_a_sigkill_are_applied_once(
    kafka_settings, start_worker, tmp_path
):
    partitions = kafka_settings.events_partitions
    events = [{**e, "attrs": {"i": i}} for i, e in enumerate(simulated(N, seed=33, minutes=10))]
    landed = librdkafka.publish(kafka_settings, events, key=lambda e: None)
    hops = librdkafka.away(events, landed, partitions)
    assert hops.total() > N / 2, hops
    env = {
        "VIGIL_DATA_DIR": str(tmp_path / "data"),
        "VIGIL_WINDOWS": "1m",
        "VIGIL_GRACE_SECONDS": str(GRACE_S),
        "VIGIL_IDLE_SECONDS": "3600",
        "VIGIL_BATCH_MAX_MESSAGES": "500",
    }
    for _ in range(KILLS):
        worker = start_worker(**env, VIGIL_CHECKPOINT_SECONDS="60")
        seen = worker.wait_until(
            lambda s: sum(s.get("rerouted_from", {}).values()) > 0 and s.get("valid", 0) > 0,
            timeout=60,
        )
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        assert seen["offsets"] == {}, "no checkpoint yet: the kill came before it"
    last = start_worker(**env)
    last.wait_until(lambda s: s.get("valid", 0) >= N, timeout=180)
    librdkafka.publish_clocks(kafka_settings, int(time.time() * 1000) + 2 * 3600_000)
    final = last.wait_until(lambda s: s.get("valid", 0) >= N + partitions, timeout=60)
    assert final["valid"] == N + partitions
    # The replay forwarded again what the killed workers had forwarded; none applied twice.
    assert final.get("rerouted_repeats", 0) > 0
    assert last.stop() == 0

    with open_store(Path(env["VIGIL_DATA_DIR"])) as ch:
        ids = ch.query(
            "SELECT JSONExtractInt(attrs, 'i') AS i, count() FROM vigil.events "
            "WHERE service != 'clock' GROUP BY i"
        ).result_rows
        twice = [(i, n) for i, n in ids if n != 1]
        assert twice == [] and sorted(i for i, _ in ids) == list(range(N)), (
            f"{len(twice)} stored more than once, {N - len(ids)} missing"
        )
        assert assert_recounted(ch, grace_s=GRACE_S)[0] > 100

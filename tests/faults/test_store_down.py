"""ClickHouse unavailable for a while: another process holds the embedded chDB path
(chDB allows one process per path) when the worker starts, while events flow.

The worker does not crash: it says why it is not ready, commits nothing, retries with
backoff, and once the path is free it catches up with nothing lost and nothing twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from producers.client import Client
from tests.conftest import held_store, open_store
from vigil import webclient
from vigil.simulation import Simulation

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 20_000


async def test_a_store_that_cannot_be_opened_delays_the_worker_and_loses_nothing(
    kafka_settings, start_worker, tmp_path
):
    data = tmp_path / "held"
    with held_store(data):
        worker = start_worker(VIGIL_DATA_DIR=str(data), VIGIL_WINDOWS="1m")
        sim = Simulation(seed=8, start_ms=int(time.time() * 1000) - 20 * 60_000)
        events = [e for _, e in zip(range(N), sim.advance(20 * 60_000), strict=False)]
        async with Client(kafka_settings) as pub:
            for event in events:
                assert pub.publish(event)
            assert await pub.flush(60)

        ready = f"http://127.0.0.1:{worker.port}/ready"
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = webclient.call(ready, timeout=2)
            except webclient.Unreachable:
                status, body = None, None
            if status == 503 and any("ClickHouse" in r for r in body["reasons"]):
                break
            assert time.monotonic() < deadline, (status, body)
            time.sleep(0.3)
        time.sleep(5)  # still held: the worker waits, it does not exit
        assert worker.proc.poll() is None
        stats = worker.stats()
        assert stats.get("valid", 0) == 0 and stats.get("offsets") == {}
        assert "cannot open ClickHouse" in worker.log()
    final = worker.wait_until(lambda s: s.get("valid", 0) >= len(events), timeout=120)
    assert final["valid"] == len(events) and final.get("rejected", 0) == 0
    assert webclient.call(ready)[0] == 200
    assert worker.stop() == 0
    with open_store(Path(data)) as ch:
        raw = ch.query("SELECT count(), uniqExact(partition, offset, idx) FROM vigil.events")
        assert raw.result_rows[0] == (len(events), len(events))

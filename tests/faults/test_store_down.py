"""ClickHouse unavailable for a while, while events flow: another process holds the
embedded chDB path (chDB allows one process per path) when the worker starts, or the
server the worker writes to is killed mid-stream and comes back.

The worker does not crash: it says why it is not ready, commits nothing, retries with
backoff, and once ClickHouse answers it catches up with nothing lost and nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from producers.client import Client
from tests.conftest import applied, held_store, open_store
from tests.faults.common import exactly_once, fault_env, publish_steadily
from tests.samples import simulated
from tests.topics import wait_committed
from vigil import webclient
from vigil.simulation import Simulation

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 20_000


def _rss_mb(worker) -> float:
    status = Path(f"/proc/{worker.proc.pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) / 1024


def _ready(worker) -> int:
    return webclient.call(f"http://127.0.0.1:{worker.port}/ready", timeout=2)[0]


def _wait_not_ready_for_clickhouse(worker) -> None:
    """Until ``/ready`` answers 503 with a ClickHouse reason (within 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            status, body = webclient.call(f"http://127.0.0.1:{worker.port}/ready", timeout=2)
        except webclient.Unreachable:
            status, body = None, None
        if status == 503 and any("ClickHouse" in r for r in body["reasons"]):
            return
        assert time.monotonic() < deadline, (status, body, worker.stats())
        time.sleep(0.3)


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

        _wait_not_ready_for_clickhouse(worker)
        time.sleep(5)  # still held: the worker waits, it does not exit
        assert worker.proc.poll() is None
        stats = worker.stats()
        assert stats.get("valid", 0) == 0 and stats.get("offsets") == {}
        assert "cannot open ClickHouse" in worker.log()
    final = worker.wait_until(lambda s: s.get("valid", 0) >= len(events), timeout=120)
    assert final["valid"] == len(events) and final.get("rejected", 0) == 0
    assert _ready(worker) == 200
    assert worker.stop() == 0
    with open_store(Path(data)) as ch:
        raw = ch.query("SELECT count(), uniqExact(partition, offset, idx) FROM vigil.events")
        assert raw.result_rows[0] == (len(events), len(events))


async def test_a_server_killed_mid_stream_delays_the_worker_and_loses_nothing(
    kafka_settings, start_worker, shared_store, tmp_path
):
    events = simulated(N, seed=9, minutes=20)
    worker = start_worker(VIGIL_CLICKHOUSE_DSN=shared_store.dsn, **fault_env(tmp_path))
    await asyncio.to_thread(worker.wait_until, lambda s: len(s.get("assigned", [])) == 4, 60)
    publishing = asyncio.create_task(publish_steadily(kafka_settings, events, per_second=1000))
    await asyncio.to_thread(worker.wait_until, lambda s: applied(s) > 0, 60)
    shared_store.kill()
    killed_at = time.monotonic()
    await asyncio.to_thread(_wait_not_ready_for_clickhouse, worker)
    first = worker.stats()
    rss = [_rss_mb(worker)]
    await asyncio.sleep(8)  # events keep coming; nothing is stored, so nothing is committed
    down = worker.stats()
    rss.append(_rss_mb(worker))
    assert worker.proc.poll() is None and applied(down) == applied(first), (first, down)
    # Memory stays bounded: no batch is taken while one waits for the store (the rest
    # waits in Kafka, and in the consumer's bounded prefetch).
    taken = applied(down, "processed") - applied(first, "processed")
    batch = int(worker.env["VIGIL_BATCH_MAX_MESSAGES"])
    assert taken <= 2 * batch, (first, down)
    failing = worker.metrics()
    assert sum(failing["vigil_consumer_lag"].values()) > 2 * batch, "events came"
    assert failing["vigil_sink_failing"][()] == 1
    assert failing["vigil_sink_insert_retries_total"][()] >= 2  # with backoff: a few, not many
    shared_store.start()
    down_s = time.monotonic() - killed_at

    envelopes = await publishing
    await wait_committed(kafka_settings, envelopes, timeout=180, state=worker.stats)
    assert _ready(worker) == 200
    after = worker.metrics()
    assert after["vigil_sink_failing"][()] == 0
    retries = after["vigil_sink_insert_retries_total"][()]
    assert worker.stop() == 0
    with shared_store.client() as ch:
        published = await exactly_once(ch, kafka_settings, N)
    print(
        f"\nserver down {down_s:.1f} s: {retries:.0f} insert retries, "
        f"{taken} messages taken meanwhile, worker RSS "
        f"{rss[0]:.0f} -> {rss[1]:.0f} MB; {N} events stored once, "
        f"{published} alert transitions once"
    )

"""Asked to stop while its ClickHouse server no longer answers, a worker still exits
within its bound (the final checkpoint's ``VIGIL_SHUTDOWN_SECONDS``, closing, and
``streams.stopping.SLACK_SECONDS`` for the rest), saying where it was stuck, instead of
waiting on the store's thread until its supervisor kills it. Nothing is lost: what it
did not store is replayed from the last commit by the next worker."""

from __future__ import annotations

import signal
import time

import pytest

from producers.client import Client
from streams.stopping import STUCK, within
from tests.conftest import applied
from tests.samples import metric
from vigil.embedded import stop

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SHUTDOWN_S = 2


@pytest.mark.filterwarnings("ignore:.*was stuck stopping")  # what it is made to do here
async def test_a_worker_asked_to_stop_exits_within_its_bound_when_the_store_is_frozen(
    kafka_settings, start_worker, shared_store
):
    worker = start_worker(
        VIGIL_CLICKHOUSE_DSN=shared_store.dsn,
        VIGIL_SHUTDOWN_SECONDS=str(SHUTDOWN_S),
        VIGIL_CHECKPOINT_SECONDS="0.3",
    )
    worker.wait_until(lambda s: len(s.get("assigned", [])) == 4, timeout=90)
    now = int(time.time() * 1000)
    async with Client(kafka_settings) as pub:
        for i in range(100):
            pub.publish(metric(now - 60_000 + i * 100, float(i)))
        assert await pub.flush(30)
        done = worker.wait_until(lambda s: s.get("valid") == 100 and applied(s) > 0, timeout=60)
        taken = applied(done, "processed")
        shared_store.proc.send_signal(signal.SIGSTOP)  # takes inserts, answers none
        try:
            for i in range(100):
                pub.publish(metric(now - 30_000 + i * 100, float(i)))
            assert await pub.flush(30)
            # Taken and processed; its insert waits for the frozen server.
            worker.wait_until(lambda s: applied(s, "processed") > taken, timeout=60)
            bound = within(SHUTDOWN_S)
            # Killed (-9) if it is still there well past its bound.
            code = stop(worker.proc, timeout=bound + 15)
        finally:
            shared_store.proc.send_signal(signal.SIGCONT)
    log = worker.log()
    assert code == 0, log[-3000:]
    stuck = [line for line in log.splitlines() if STUCK in line]
    assert len(stuck) == 1 and f"{STUCK} {bound:.0f} s after" in stuck[0], log[-3000:]
    # Every thread's stack follows, the store's among them, stuck in its HTTP request.
    assert "Thread 0x" in log and "clickhouse_connect" in log.split(stuck[0])[1], log[-3000:]

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
import time
from pathlib import Path

import pytest

from producers.alerts import Alert
from producers.client import Client
from producers.topics import Topics
from tests.conftest import open_store
from tests.samples import simulated
from tests.topics import committed, read_records

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 45_000
KILLS = 6
RECOUNT = """
    SELECT w.series, w.window_start, w.count, w.errors, r.c, r.e
    FROM (SELECT * FROM vigil.windows FINAL WHERE width_s = 60) AS w
    LEFT JOIN (
        SELECT series, toStartOfMinute(ts) AS start, count() AS c, countIf(ok = false) AS e
        FROM vigil.events WHERE NOT late GROUP BY series, start
    ) AS r ON r.series = w.series AND r.start = w.window_start
    WHERE w.count != r.c OR w.errors != r.e
"""


def _applied(stats: dict) -> int:
    return sum(offset + 1 for offset in stats.get("offsets", {}).values())


async def _publish(settings, events, per_second: int) -> int:
    async with Client(settings) as pub:
        began = time.monotonic()
        for i, event in enumerate(events):
            while not pub.publish(event):
                await asyncio.sleep(0.01)
            if i % 500 == 0:  # a steady flow, not one burst
                await asyncio.sleep(max(0.0, began + i / per_second - time.monotonic()))
        assert await pub.flush(120)
        stats = pub.stats()
    assert stats["sent"] == len(events) and stats["dropped"] == 0
    return stats["envelopes"]


def _wait_for_moment(worker, wanted: str, before: dict, rng: random.Random) -> str:
    """Poll the worker until the moment to kill it comes (within 20 s); which came."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if wanted == "after a checkpoint" and _applied(stats) > _applied(before):
            return wanted
        if wanted == "mid-batch" and stats.get("messages", 0) > before.get("messages", 0):
            time.sleep(rng.uniform(0.0, 0.2))
            return wanted
        if wanted == "during an insert" and stats.get("inserting"):
            return wanted
        time.sleep(0.02)
    return "at the deadline"


async def test_repeated_sigkills_lose_nothing_and_duplicate_nothing(
    kafka_settings, start_worker, tmp_path
):
    events = simulated(N, seed=41, minutes=30)
    data = tmp_path / "kills"
    env = {
        "VIGIL_DATA_DIR": str(data),
        "VIGIL_WINDOWS": "1m",
        "VIGIL_GRACE_SECONDS": "5",
        "VIGIL_CHECKPOINT_SECONDS": "0.5",
        "VIGIL_BATCH_MAX_MESSAGES": "8",
    }
    rng = random.Random(5)
    publishing = asyncio.create_task(_publish(kafka_settings, events, per_second=1500))
    kinds = collections.Counter()
    for k in range(KILLS):
        worker = start_worker(**env)
        before = worker.wait_until(lambda s: len(s.get("assigned", [])) > 0, timeout=60)
        wanted = ("after a checkpoint", "mid-batch", "during an insert")[k % 3]
        seen = await asyncio.to_thread(_wait_for_moment, worker, wanted, before, rng)
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait()
        kinds[seen] += 1
    envelopes = await publishing
    last = start_worker(**env)
    await asyncio.to_thread(last.wait_until, lambda s: len(s.get("assigned", [])) == 4, 60)
    topics = Topics.for_namespace(kafka_settings.namespace)
    deadline = time.monotonic() + 240
    while (done := await committed(kafka_settings, topics.events)) < envelopes:
        assert time.monotonic() < deadline, (done, envelopes, last.stats())
        await asyncio.sleep(1)
    assert last.stop() == 0
    assert kinds["after a checkpoint"] and kinds["mid-batch"] and kinds["during an insert"], kinds

    with open_store(Path(data)) as ch:
        raw = ch.query(
            "SELECT count(), uniqExact(partition, offset, idx) FROM vigil.events"
        ).result_rows[0]
        assert raw == (N, N), "every acknowledged event stored exactly once"
        windows = ch.query("SELECT count() FROM vigil.windows FINAL").result_rows[0][0]
        assert windows > 100
        assert ch.query(RECOUNT).result_rows == []
        stored_alerts = ch.query(
            "SELECT fingerprint, seq, count() AS n FROM vigil.alerts GROUP BY fingerprint, seq "
            "HAVING n > 1"
        ).result_rows
    assert stored_alerts == []

    on_topic = await read_records(kafka_settings.kafka_bootstrap, topics.alerts, 0, timeout=5)
    published = collections.Counter(
        (a.fingerprint, a.seq) for a in (Alert.decode(r.value) for r in on_topic)
    )
    twice = [key for key, n in published.items() if n > 1]
    assert twice == [], f"{len(twice)} of {len(published)} transitions published twice"

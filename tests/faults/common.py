"""What the fault tests share: a steady publisher, the moments to kill a worker at, and
the exactly-once checks on the store and the alerts topic."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from typing import Any

from producers.alerts import Alert
from producers.client import Client
from producers.topics import Topics
from tests.conftest import applied
from tests.topics import read_records

RECOUNT = """
    SELECT w.series, w.window_start, w.count, w.errors, r.c, r.e
    FROM (SELECT * FROM vigil.windows FINAL WHERE width_s = 60) AS w
    LEFT JOIN (
        SELECT series, toStartOfMinute(ts) AS start, count() AS c, countIf(ok = false) AS e
        FROM vigil.events WHERE NOT late GROUP BY series, start
    ) AS r ON r.series = w.series AND r.start = w.window_start
    WHERE w.count != r.c OR w.errors != r.e
"""


#: Rules that flip often on the simulated events (a workflow step that failed at least
#: once in a minute fires; a minute without a failure resolves it), so that the fault tests
#: check dozens of alert transitions for duplicates (about 50 a run), not one or four.
FLAPPING_RULES = """
[[rule]]
name = "step_failed"
match = { kind = "step.end" }
signal = "errors"
window = "1m"
op = ">="
threshold = 1
severity = "info"
"""


def fault_env(directory: Any) -> dict[str, str]:
    """The worker settings of the fault tests: 1 m windows, small batches, checkpoints
    0.5 s apart (messages in between are held, and replayed after a kill), and
    :data:`FLAPPING_RULES` (written to ``directory``)."""
    rules = directory / "flapping.toml"
    rules.write_text(FLAPPING_RULES)
    return {
        "VIGIL_WINDOWS": "1m",
        "VIGIL_GRACE_SECONDS": "5",
        "VIGIL_CHECKPOINT_SECONDS": "0.5",
        "VIGIL_BATCH_MAX_MESSAGES": "8",
        "VIGIL_RULES": str(rules),
    }


async def publish_steadily(settings, events, per_second: int) -> int:
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


def wait_for_moment(worker, wanted: str, before: dict, rng: random.Random) -> str:
    """Poll the worker until the moment to kill it comes (within 20 s); which came."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = worker.stats() or {}
        if wanted == "after a checkpoint" and applied(stats) > applied(before):
            return wanted
        if wanted == "mid-batch" and stats.get("messages", 0) > before.get("messages", 0):
            time.sleep(rng.uniform(0.0, 0.2))
            return wanted
        if wanted == "during an insert" and stats.get("inserting"):
            return wanted
        time.sleep(0.02)
    return "at the deadline"


async def exactly_once(ch: Any, kafka_settings: Any, n: int) -> int:
    """Assert, on the store ``ch`` and the alerts topic of ``kafka_settings``: ``n`` raw
    rows, none twice; every closed window equal to a recount of its raw rows; no alert
    transition stored or published twice. The number of transitions published."""
    raw = ch.query("SELECT count(), uniqExact(partition, offset, idx) FROM vigil.events")
    assert raw.result_rows[0] == (n, n), "every acknowledged event stored exactly once"
    windows = ch.query("SELECT count() FROM vigil.windows FINAL").result_rows[0][0]
    assert windows > 100
    assert ch.query(RECOUNT).result_rows == []
    stored_twice = ch.query(  # without FINAL: a row stored twice is seen twice
        "SELECT fingerprint, seq, count() AS n FROM vigil.alerts GROUP BY fingerprint, seq "
        "HAVING n > 1"
    ).result_rows
    assert stored_twice == []
    topic = Topics.for_namespace(kafka_settings.namespace).alerts
    on_topic = await read_records(kafka_settings.kafka_bootstrap, topic, 0, timeout=5)
    published = collections.Counter(
        (a.fingerprint, a.seq) for a in (Alert.decode(r.value) for r in on_topic)
    )
    twice = [key for key, k in published.items() if k > 1]
    assert twice == [], f"{len(twice)} of {len(published)} transitions published twice"
    return len(published)

"""The walking skeleton end to end: SDK -> Kafka (Tansu) -> Faust worker -> chDB + DLQ."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import pytest

from producers.client import Client
from producers.events import KINDS
from producers.topics import Topics
from tests.conftest import open_store
from tests.malformed import malformed
from tests.topics import read_records
from vigil.simulation import Simulation

pytestmark = pytest.mark.integration

N_VALID = 50_000
N_BAD = 500


async def _publish(settings, events, bad):
    async with Client(settings) as pub:
        for i, event in enumerate(events):
            assert pub.publish(event)
            if i % 97 == 0 and bad:
                line, _ = bad.pop()
                pub.publish_line(f"bad-{i}", line)
            if i % 5000 == 0:
                await asyncio.sleep(0)
        for line, _ in bad:
            pub.publish_line("bad-tail", line)
        assert await pub.flush(60)
        return pub.stats()


async def test_events_flow_into_clickhouse_and_bad_ones_into_the_deadletter_topic(
    kafka_settings, start_worker, worker_env
):
    start_ms = int(time.time() * 1000) - 40 * 60_000
    sim = Simulation(seed=11, start_ms=start_ms)
    events = []
    for event in sim.advance(40 * 60_000):
        events.append(event)
        if len(events) == N_VALID:
            break
    assert len(events) == N_VALID
    assert {e["kind"] for e in events} == KINDS, "the sample must hold every kind"
    bad = malformed(N_BAD)
    reasons_by_line = {line: reason for line, reason in bad}

    worker = start_worker()
    stats = await _publish(kafka_settings, events, list(bad))
    assert stats["sent"] == N_VALID + N_BAD and stats["dropped"] == 0

    final = worker.wait_until(
        lambda s: s.get("valid", 0) + s.get("rejected", 0) >= N_VALID + N_BAD, timeout=120
    )
    assert final["valid"] == N_VALID
    assert final["rejected"] == N_BAD
    assert worker.stop() == 0

    topics = Topics.for_namespace(kafka_settings.namespace)
    dead = await read_records(kafka_settings.kafka_bootstrap, topics.deadletter, N_BAD)
    assert len(dead) == N_BAD
    seen = collections.Counter(r.value for r in dead)
    assert set(seen) == set(reasons_by_line) and max(seen.values()) == 1
    for record in dead:
        headers = dict(record.headers)
        assert reasons_by_line[record.value] in headers["vigil-reason"].decode()
        assert headers["vigil-source-topic"].decode() == topics.events
        assert int(headers["vigil-source-offset"]) >= 0

    with open_store(Path(worker_env["VIGIL_DATA_DIR"])) as ch:
        raw = ch.query(
            "SELECT count(), uniqExact(partition, offset, idx), uniqExact(kind) FROM vigil.events"
        ).result_rows[0]
        assert raw == (N_VALID, N_VALID, len(KINDS))
        per_kind = dict(
            ch.query("SELECT kind, count() FROM vigil.events GROUP BY kind").result_rows
        )
        assert per_kind == collections.Counter(e["kind"] for e in events)
        windows = ch.query(
            "SELECT count(), sum(count) FROM vigil.windows FINAL WHERE width_s = 60"
        ).result_rows[0]
        assert windows[0] > 100, "most of the 40 minutes must have closed windows"
        late = ch.query("SELECT countIf(late) FROM vigil.events").result_rows[0][0]
        assert late == final.get("late", 0)
        mismatches = ch.query(
            """
            SELECT w.series, w.window_start, w.count, w.errors, r.c, r.e
            FROM (SELECT * FROM vigil.windows FINAL) AS w
            LEFT JOIN (
                SELECT series, toStartOfMinute(ts) AS start, count() AS c,
                       countIf(ok = false) AS e
                FROM vigil.events WHERE NOT late GROUP BY series, start
            ) AS r ON r.series = w.series AND r.start = w.window_start
            WHERE w.count != r.c OR w.errors != r.e
            """
        ).result_rows
        assert mismatches == []

"""The walking skeleton end to end: SDK -> Kafka (Tansu) -> Faust worker -> chDB + DLQ."""

from __future__ import annotations

import asyncio
import collections
import time
from pathlib import Path

import orjson
import pytest

from producers.client import Client
from producers.events import KINDS
from producers.topics import Topics
from tests.conftest import open_store
from tests.malformed import malformed
from tests.recount import assert_recounted
from tests.samples import simulated
from tests.topics import read_records

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
    events = simulated(N_VALID, seed=11, minutes=40)
    assert {e["kind"] for e in events} == KINDS, "the sample must hold every kind"
    bad = malformed(N_BAD)
    reasons_by_line = {line: reason for line, reason in bad}

    # No partition goes idle mid-stream: event time comes from the log alone, so the late
    # flags can be recomputed from it.
    worker = start_worker(VIGIL_WINDOWS="1m,5m,5m/1m", VIGIL_IDLE_SECONDS="3600")
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
        # The late flags themselves, against the rule applied to the stored logs (the
        # window recounts leave late events out of both sides, so they cannot see a wrong
        # flag); then both ways, by the watermark rule from the raw rows (the default
        # grace, 30 s): no window missing, none extra, none with other counts; tumbling
        # and hopping.
        due = assert_recounted(ch, grace_s=30, windows=((60, 60), (300, 300), (300, 60)))
        assert min(due) > 20, due
        _check_window_figures(ch)
        table_rows = ch.query(
            "SELECT series, window, toUnixTimestamp64Milli(window_end), count "
            "FROM vigil.windows FINAL"
        ).result_rows
    # The windows topic carries the same windows (at least once), times in ms.
    on_topic = await read_records(
        kafka_settings.kafka_bootstrap,
        topics.windows,
        len(table_rows),
        weight=lambda r: r.value.count(b"\n") + 1,
    )
    topic_rows = {
        (w["series"], w["window"], w["window_end_ms"], w["count"])
        for r in on_topic
        for w in map(orjson.loads, r.value.split(b"\n"))
    }
    assert topic_rows == set(table_rows)


def _check_window_figures(ch) -> None:
    """Every 1m and 5m window equals a recount of its raw events; hopping 5m/1m windows
    equal the sum of the 1m windows they cover."""
    for width, unit in ((60, "MINUTE"), (300, "MINUTE * 5")):
        step = "1" if width == 60 else "5"
        bad = ch.query(
            f"""
            SELECT w.series, w.window_start, w.count, r.c, w.min, r.lo, w.max, r.hi,
                   w.sum, r.total, w.p50, r.median
            FROM (SELECT * FROM vigil.windows FINAL WHERE width_s = {width} AND hop_s = {width})
                AS w
            LEFT JOIN (
                SELECT series, toStartOfInterval(ts, INTERVAL {step} MINUTE) AS start,
                       count() AS c, min(value) AS lo, max(value) AS hi,
                       sum(value) AS total, quantileExactLow(0.5)(value) AS median
                FROM vigil.events WHERE NOT late GROUP BY series, start
            ) AS r ON r.series = w.series AND r.start = w.window_start
            WHERE w.count != r.c OR w.min != r.lo OR w.max != r.hi
               OR abs(w.sum - r.total) > 1e-6 * abs(r.total) + 1e-9
               OR abs(w.p50 - r.median) > 0.02 * abs(r.median) + 1e-9
            """
        ).result_rows
        assert bad == [], (unit, bad[:5])
        closed = ch.query(
            f"SELECT count() FROM vigil.windows FINAL WHERE width_s = {width} AND hop_s = {width}"
        ).result_rows[0][0]
        assert closed > 20, unit
    minutes = collections.defaultdict(int)
    for series, start, count in ch.query(
        "SELECT series, toUnixTimestamp64Milli(window_start), count FROM vigil.windows FINAL "
        "WHERE width_s = 60"
    ).result_rows:
        minutes[(series, start)] = count
    hopping = ch.query(
        "SELECT series, toUnixTimestamp64Milli(window_start), count FROM vigil.windows FINAL "
        "WHERE width_s = 300 AND hop_s = 60"
    ).result_rows
    assert len(hopping) > 100
    for series, start, count in hopping:
        covered = sum(minutes[(series, start + i * 60_000)] for i in range(5))
        assert covered == count, (series, start)


async def test_a_quiet_series_still_reports_its_window_after_the_stream_stops(
    kafka_settings, start_worker, worker_env
):
    worker = start_worker(VIGIL_WINDOWS="10s", VIGIL_GRACE_SECONDS="1", VIGIL_IDLE_SECONDS="1")
    ts = int(time.time() * 1000) - 9_500  # its 10 s window ends within a second from now
    async with Client(kafka_settings) as vigil:
        for i in range(5):
            assert vigil.metric("queue_depth", float(i), {"queue": "q1"}, ts=ts + i)
        assert await vigil.flush(30)
    # No event ever passes the window's end: only the wall clock can close it.
    final = worker.wait_until(lambda s: s.get("windows_closed", 0) >= 1, timeout=60)
    assert final["valid"] == 5 and final["late"] == 0
    assert worker.stop() == 0
    with open_store(Path(worker_env["VIGIL_DATA_DIR"])) as ch:
        rows = ch.query(
            "SELECT window, count, min, max, p50 FROM vigil.windows FINAL "
            "WHERE name = 'queue_depth'"
        ).result_rows
    [(window, count, lo, hi, p50)] = rows
    assert (window, count, lo, hi) == ("10s", 5, 0.0, 4.0)
    assert p50 == pytest.approx(2.0, rel=0.01)

"""Forecasting and anomaly pattern analysis (seed 000) through the real pipeline: a
latency series with a daily cycle and an hour-long surge, published through the SDK and
stored by a worker (its default detector scoring each closed minute); then the series'
forecast against the cycle it follows, and the anomaly episodes against a recount of the
detector scores the worker stored."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from datetime import datetime
from urllib.parse import quote

import clickhouse_connect
import pytest

from producers import Client

pytestmark = pytest.mark.integration

MINUTE, HOUR = 60_000, 3_600_000
DAYS = 3
KEY = "metric|db|query_latency_ms"


def _asked(worker, path: str) -> tuple[int, dict, set[int]]:
    """The worker's answer to ``path``, and the hour under way (ms) as it was asked: one
    hour, or two when one began during the call."""
    before = int(time.time() * 1000) // HOUR * HOUR
    status, answer = worker.call(path)
    return status, answer, {before, int(time.time() * 1000) // HOUR * HOUR}


def cycle(t_ms: int) -> float:
    """The series without noise: 100 ms, 40 ms up at 14:00 UTC and down at 02:00."""
    return 100 + 40 * math.sin(2 * math.pi * ((t_ms / HOUR - 8) % 24) / 24)


async def test_a_forecast_follows_the_cycle_and_episodes_equal_the_stored_scores(
    kafka_settings, start_worker
):
    worker = start_worker()
    if time.time() % 3600 > 3540:  # an hour that ends before the answers come: the next one
        await asyncio.sleep(3601 - time.time() % 3600)
    # Data up to the hour under way, none missing: with the whole hour before it empty,
    # the forecast's band missed the cycle at some times of day (CI at 04:xx UTC).
    end = int(time.time()) // 3600 * HOUR
    start = end - DAYS * 24 * HOUR
    surge = (start + 2 * 24 * HOUR + 3 * HOUR, start + 2 * 24 * HOUR + 4 * HOUR)
    async with Client(dataclasses.replace(kafka_settings, service="db")) as vigil:
        for i, t in enumerate(range(start, end, MINUTE)):
            noise = 2 * math.sin(i * 1.7)  # deterministic wiggle
            value = cycle(t) + noise + (300 if surge[0] <= t < surge[1] else 0)
            vigil.metric("query_latency_ms", value, ts=t)
            if i % 2000 == 1999:
                await asyncio.sleep(0)
        assert await vigil.flush(60)
        sent = vigil.stats()["sent"]
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == sent, 120)

    # The forecast of the next six hours, from hourly means: the daily cycle, within its band.
    # The hour under way is the wall clock's when the question is asked (an hour may have
    # begun since the data was published), so it is read on both sides of each call.
    q = f"series={quote(KEY)}&since={DAYS + 1}d&step=1h&horizon=6h"
    status, fc, under_way = _asked(worker, f"/history/forecast?{q}")
    assert status == 200, fc
    assert fc["model"] == "seasonal" and len(fc["forecast"]) == 6
    first = datetime.fromisoformat(fc["forecast"][0]["t"]).timestamp() * 1000
    assert first in under_way  # the hour after the last whole one (the one under way)
    for point in fc["forecast"]:
        at = datetime.fromisoformat(point["t"]).timestamp() * 1000
        truth = sum(cycle(int(at) + m * MINUTE) for m in range(60)) / 60  # that hour's mean
        assert point["low"] <= truth <= point["high"], point
        assert abs(point["expected"] - truth) < 10, (point, truth)
    # A young history: from 90 minutes before the data ends, every whole hour since.
    back_s = int(time.time() - (end - 90 * MINUTE) / 1000)
    young_q = f"series={quote(KEY)}&since={back_s}s&step=1h"
    status, young, under_way = _asked(worker, f"/history/forecast?{young_q}")
    assert status == 200 and young["forecast"] == [] and young["model"] is None
    hours = {(u - (end - 2 * HOUR)) // HOUR for u in under_way}  # end - 2 h: its first hour
    assert young["note"].startswith("too little history") and len(young["history"]) in hours

    # Anomaly episodes: the detector's anomalous minutes the worker stored (read over its
    # SQL port, as any ClickHouse client would), grouped.
    ch = clickhouse_connect.get_client(
        host="127.0.0.1", port=int(worker.env["VIGIL_SQL_PORT"]), username="default",
        password=worker.token,
    )  # fmt: skip
    try:
        flagged = sorted({
            int(t.timestamp() * 1000)
            for (t,) in ch.query(
                "SELECT window_end FROM vigil.anomaly_scores FINAL WHERE series = {s:String} "
                "AND window = '1m' AND score >= threshold", parameters={"s": KEY}
            ).result_rows
        })  # fmt: skip
    finally:
        ch.close()
    assert flagged, "the surge is anomalous"
    assert any(surge[0] <= t <= surge[1] + 30 * MINUTE for t in flagged)
    runs: list[list[int]] = []
    for t in flagged:
        if runs and t - runs[-1][-1] <= MINUTE:
            runs[-1].append(t)
        else:
            runs.append([t])
    status, patterns = worker.call(f"/history/anomaly_patterns?since={DAYS + 1}d&limit=1000")
    assert status == 200, patterns
    got = sorted(
        (datetime.fromisoformat(e["start"]).timestamp() * 1000 + MINUTE,
         datetime.fromisoformat(e["end"]).timestamp() * 1000, e["windows"])
        for e in patterns["episodes"]
    )  # fmt: skip
    assert got == [(r[0], r[-1], len(r)) for r in runs]
    (series,) = patterns["series"]
    assert series["series"] == KEY and series["episodes"] == len(runs)
    assert sum(series["shapes"].values()) == len(runs)
    assert "surge" in series["shapes"]  # the hour above the median, longer than three minutes

"""Scheduled work (seed 001) through a real worker: the daily report written to a
directory and sent through Apprise (a JSON webhook here, served by the test), and old
day partitions archived; each once a day, after the backlog is stored, not again after a
restart."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from datetime import UTC, datetime

import pytest
from aiohttp import web

from producers import Client
from sinks import archive
from vigil.embedded import free_port

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
#: How long before midnight the test waits for the next day instead of starting.
MIDNIGHT_MARGIN_S = 300


async def receiver() -> tuple[web.AppRunner, list[dict], int]:
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, got, port


async def test_the_daily_report_and_archive_run_once_a_day(kafka_settings, start_worker, tmp_path):
    # A run that crosses midnight (UTC) meets the next day's report at its restart: it did
    # in CI at 00:00 once (two reports sent). The test takes about a minute and a half.
    to_midnight_s = (DAY_MS - int(time.time() * 1000) % DAY_MS) / 1000
    if to_midnight_s < MIDNIGHT_MARGIN_S:
        await asyncio.sleep(to_midnight_s + 5)
    runner, got, port = await receiver()
    today = datetime.now(UTC).date()
    midnight = int(datetime.combine(today, datetime.min.time(), UTC).timestamp() * 1000)
    yesterday_noon, old = midnight - DAY_MS // 2, midnight - 3 * DAY_MS + 3_600_000
    settings = dataclasses.replace(kafka_settings, service="night")
    async with Client(settings) as vigil:  # published before the worker starts: a backlog
        vigil.execution_started("nightly-etl", "r1", ts=yesterday_noon)
        vigil.execution_completed("nightly-etl", "r1", ok=True, duration_ms=60_000.0,
                                  ts=yesterday_noon + 60_000)  # fmt: skip
        for i in range(5):
            vigil.metric("old_gauge", float(i), ts=old + i * 1000)
        assert await vigil.flush(30)
        sent = vigil.stats()["sent"]
    env = {
        "VIGIL_REPORT_AT": "00:00",
        "VIGIL_REPORT_KIND": "comprehensive",
        "VIGIL_REPORT_APPRISE": f"json://127.0.0.1:{port}/hook",
        "VIGIL_ARCHIVE_AT": "00:00",
        "VIGIL_ARCHIVE_AFTER_DAYS": "1",
    }
    worker = start_worker(**env)
    data_dir = tmp_path / "data"
    state = data_dir / "scheduled.json"
    try:

        def done() -> dict:
            return json.loads(state.read_text()) if state.exists() else {}

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (len(done()) == 2 and got):
            await asyncio.sleep(0.5)  # the report, then the archive, in one check
        assert len(done()) == 2 and got, worker.log()[-3000:]
        stats = worker.stats()
        assert stats["raw_rows"] == sent  # the backlog was stored before the jobs ran
        assert json.loads(state.read_text()) == {"report": str(today), "archive": str(today)}

        # The report of the 24 hours before today's 00:00, written and sent.
        page = (data_dir / "reports" / f"vigil-comprehensive-{today}.html").read_text()
        assert "nightly-etl" in page and f"Vigil comprehensive report, {today}" in page
        (message,) = got
        assert message["title"] == f"Vigil comprehensive report, {today}"
        assert "nightly-etl" in message["message"]
        (attached,) = message["attachments"]
        assert base64.b64decode(attached["base64"]).decode() == page

        # Day partitions before yesterday are in Parquet and gone from the tables.
        manifest = archive.load(data_dir / "archive")
        old_day = datetime.fromtimestamp(old / 1000, UTC).strftime("%Y%m%d")
        assert manifest[f"events/{old_day}"]["rows"] == 5
        assert all(key.rsplit("/", 1)[1] == old_day for key in manifest)
        status, rows = worker.call("/history/series?series=metric|night|old_gauge&since=5d")
        assert status == 200 and sum(r["count"] for r in rows["points"]) == 0

        # A restart the same day runs nothing again.
        assert worker.stop() == 0
        again = start_worker(**env)
        again.wait_until(lambda s: 0 in s.get("assigned", []), 60)
        await asyncio.sleep(12)  # two checks and more
        assert len(got) == 1 and json.loads(state.read_text())["report"] == str(today)
    finally:
        await runner.cleanup()

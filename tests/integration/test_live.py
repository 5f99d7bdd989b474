"""The worker's live read API over HTTP, fed through the embedded broker."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from producers.client import Client
from tests.workflows import event as _ev
from tests.workflows import history_then_running

pytestmark = pytest.mark.integration


def _get(worker, path: str) -> tuple[int, dict]:
    return worker.call(path)


def _wait_for(worker, path: str, predicate, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        status, body = _get(worker, path)
        last = (status, body)
        if status == 200 and predicate(body):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path}: last answer {last}")


async def test_live_progress_and_eta_of_an_execution_move_as_its_steps_complete(
    kafka_settings, start_worker
):
    worker = start_worker(VIGIL_WINDOWS="1m")
    worker.wait_until(lambda s: True)  # serving
    now = int(time.time() * 1000)
    async with Client(kafka_settings) as vigil:
        # Three finished runs teach the worker how long each step takes; the live run's
        # first step has started.
        for ev in history_then_running(
            now - 10 * 60_000, done="old", running="live", running_at=now
        ):
            vigil.publish(ev)
        assert await vigil.flush(30)
        first = _wait_for(worker, "/executions/live", lambda b: b["current_step"] == "extract")
        assert first["progress_pct"] == 0.0 and first["status"] == "running"
        assert 12_000 <= first["eta_ms"] <= 16_000

        vigil.publish(_ev("step.end", now + 4_000, "live", step="extract", value=4_000.0, ok=True))
        vigil.publish(_ev("step.start", now + 4_000, "live", step="transform", attrs={"index": 1}))
        assert await vigil.flush(30)
        second = _wait_for(worker, "/executions/live", lambda b: b["current_step"] == "transform")
        assert second["progress_pct"] == pytest.approx(33.3)
        assert second["eta_ms"] < first["eta_ms"]

        vigil.publish(_ev("step.end", now + 13_000, "live", step="transform", value=9e3, ok=True))
        vigil.publish(_ev("step.start", now + 13_000, "live", step="load", attrs={"index": 2}))
        vigil.publish(_ev("step.end", now + 16_000, "live", step="load", value=3e3, ok=True))
        vigil.publish(
            _ev("execution.end", now + 16_000, "live", value=16e3, ok=True, status="success")
        )
        assert await vigil.flush(30)
    done = _wait_for(worker, "/executions/live", lambda b: b["status"] == "success")
    assert (done["progress_pct"], done["eta_ms"]) == (100.0, 0.0)

    stats = _wait_for(worker, "/workflows/etl", lambda b: b["runs"] == 4)
    assert stats["success_rate"] == 1.0 and stats["bottleneck"] == "transform"
    assert [s["step"] for s in stats["steps"]] == ["extract", "transform", "load"]

    status, body = _get(worker, "/executions/" + urllib.parse.quote("no-such-run"))
    assert status == 404 and "not known" in body["error"]
    status, body = _get(worker, "/series/windows")
    assert status == 400 and "required" in body["error"]
    series = urllib.parse.quote("execution.start|pipeline|etl")
    status, body = _get(worker, f"/series/windows?series={series}")
    assert status == 200 and body["windows"][0]["count"] >= 1

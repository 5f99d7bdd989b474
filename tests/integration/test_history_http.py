"""History through a running worker: events published with the SDK, answered over HTTP, by
``vigil history`` and by ``vigil.History`` from Python (through the worker, then on their
own once the worker is gone)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

import pytest

from producers.client import Client
from sinks.queries import HistoryError
from tests.history_data import HOSTILE_WORKFLOW, HOUR, generate
from vigil import History

pytestmark = pytest.mark.integration


def get(worker, path: str) -> tuple[int, dict]:
    return worker.call(path)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", "history", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_worker_answers_history_over_http_and_the_cli_with_or_without_it(
    kafka_settings, start_worker, tmp_path
):
    data = generate(now_ms=int(time.time() // 60 * 60_000))
    worker = start_worker()
    async with Client(kafka_settings) as pub:
        for event in data.events:
            assert pub.publish({k: v for k, v in event.items() if k != "series"})
        assert await pub.flush(60)
    worker.wait_until(lambda s: s.get("valid", 0) >= len(data.events), timeout=120)

    mid = data.now_ms - 6 * HOUR
    expected = {
        w: sum(e["ts"] >= mid for e in data.of("execution.end", name=w))
        for w in ("etl", HOSTILE_WORKFLOW)
    }
    status, body = get(worker, "/history/workflows?hours=6")
    assert status == 200
    assert {w["workflow"]: w["runs"] for w in body} == expected

    quoted = urllib.parse.quote(HOSTILE_WORKFLOW)
    status, body = get(worker, f"/history/workflows?hours=6&workflow={quoted}")
    assert (status, [w["workflow"] for w in body]) == (200, [HOSTILE_WORKFLOW])

    status, body = get(worker, "/history/logs?since=yesterday-ish")
    assert status == 400 and "is not a time" in body["error"]
    status, body = get(worker, "/history/drop_tables")
    assert status == 400 and "no history query 'drop_tables'" in body["error"]

    through_worker = cli(worker.env, "workflows", "--hours", "6", "--json")
    assert through_worker.returncode == 0, through_worker.stderr
    assert {w["workflow"]: w["runs"] for w in json.loads(through_worker.stdout)} == expected

    # The worker owns the chDB: opening it from here is refused with a clear reason.
    direct = cli(worker.env, "workflows", "--url", "none")
    assert direct.returncode == 2 and "one process" in direct.stderr

    bad = cli(worker.env, "series", "not-a-key")
    assert bad.returncode == 2 and "is not a series key" in bad.stderr

    # From Python: the same answer, as typed rows, a DataFrame and an Arrow table.
    history = History.from_env(worker.env)
    runs = history.workflows(hours=6)
    assert runs.source == history.url == f"http://127.0.0.1:{worker.port}"
    assert {r.workflow: r.runs for r in runs.rows} == expected
    frame, arrow = runs.to_pandas(), runs.to_arrow()
    assert dict(zip(frame["workflow"], frame["runs"], strict=True)) == expected
    assert sorted(arrow.column("workflow").to_pylist()) == sorted(expected)
    logs = history.logs(since="1d", level="error").rows
    assert logs and all(isinstance(r.ts, datetime) and r.level == "error" for r in logs)
    assert "etl" in history.report_text(since="13h", fmt="md")
    written = history.write_report(tmp_path / "week.html", since="13h")
    assert written.read_text().startswith("<!doctype html>")
    summary = history.summary(days=1)
    assert {r.workflow: r.runs for r in history.workflows(hours=24).rows} == {
        r.workflow: r.runs for r in summary["workflows"].rows
    }
    assert {m.metric for m in summary["metrics"].rows} >= {"latency_ms"}
    with pytest.raises(HistoryError, match="is not a series key"):
        history.series("not-a-key")
    with pytest.raises(TypeError, match="no parameter 'hourz'"):
        history.workflows(hourz=6)
    with pytest.raises(AttributeError):
        history.drop_tables()

    assert worker.stop() == 0
    alone = cli(worker.env, "workflows", "--hours", "6", "--json")  # nobody listens now
    assert alone.returncode == 0, alone.stderr
    assert {w["workflow"]: w["runs"] for w in json.loads(alone.stdout)} == expected
    by_itself = History.from_env(worker.env).workflows(hours=6)
    assert by_itself.source.startswith("chdb://")
    assert {r.workflow: r.runs for r in by_itself.rows} == expected

    table = cli(worker.env, "trace", "t-1")
    assert table.returncode == 0, table.stderr
    assert "query (api) 150 ms  FAILED" in table.stdout and "query failed" in table.stdout

"""The commands a user runs by hand, run as they would be: ``vigil broker`` in one terminal,
``vigil simulate`` and ``vigil worker`` against it, then ``vigil summary`` and ``vigil report``
on the store. Their figures are checked against what is on the events topic, read back
independently."""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from producers.events import partition_for, routing_key, validate
from producers.topics import Topics
from tests.conftest import WorkerProcess
from tests.topics import read_events
from vigil.embedded import free_port

pytestmark = pytest.mark.integration


def vigil(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"vigil {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


async def test_broker_simulate_worker_summary_and_report_as_a_user_runs_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    broker = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "broker", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = broker.stdout.readline()
        assert line.startswith("VIGIL_KAFKA_BOOTSTRAP="), line
        bootstrap = line.strip().split("=", 1)[1]
        env |= {
            "VIGIL_KAFKA_BOOTSTRAP": bootstrap,
            "VIGIL_NAMESPACE": "cmds",
            "VIGIL_DATA_DIR": str(tmp_path / "data"),
            "VIGIL_API_TOKEN": "cmds-token",
        }
        # 20 s, not 12: the simulation's draws follow the wall clock's phase, and in 17 of
        # 602 start phases 12 s ended no execution (none of 2,998 over an hour in 20 s).
        out = vigil("simulate", "--duration", "20", "--rate", "200", env=env).stdout
        sent = int(re.search(r"vigil simulate: sent (\d+) events", out).group(1))
        assert sent > 1000, out

        # What simulate published, read back: every event valid, on its series' partition.
        topic = Topics.for_namespace("cmds").events
        published = await read_events(bootstrap, topic, sent)
        assert len(published) == sent
        for partition, event in published:
            validate(event, now_ms=int(time.time() * 1000))
            assert partition == partition_for(routing_key(event), 4), event
        runs = collections.Counter(e["name"] for _, e in published if e["kind"] == "execution.end")
        assert runs, "twenty simulated seconds end some executions"

        worker = WorkerProcess({**env, "VIGIL_WEB_PORT": str(free_port())}, tmp_path / "w.log")
        try:
            final = worker.wait_until(lambda s: s.get("valid", 0) >= sent, timeout=120)
            assert final["valid"] == sent and final.get("rejected", 0) == 0
        finally:
            assert worker.stop() == 0

        summary = vigil("summary", "--since-hours", "1", env=env).stdout
        rows = re.findall(r"^ {4}(\w+)\s+(\d+)\s+\d+%", summary, flags=re.MULTILINE)
        assert {name: int(n) for name, n in rows} == dict(runs), summary

        report = json.loads(
            vigil("report", "--url", "none", "--format", "json", "--since", "1h", env=env).stdout
        )
        assert {w["workflow"]: w["runs"] for w in report["workflows"]} == dict(runs)
    finally:
        broker.send_signal(signal.SIGINT)  # Ctrl-C in its terminal
        assert broker.wait(timeout=30) == 0

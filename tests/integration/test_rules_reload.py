"""Rules as code on a running worker: ``POST /-/reload`` and SIGHUP read the rules file
again; a bad file is refused and the running rules stay; an alert of an unchanged rule
keeps its state (same episode), one of a changed rule resolves on the alerts topic;
``GET /rules`` shows each rule with its state and alerts."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from producers.alerts import Alert
from producers.client import Client
from producers.topics import Topics
from tests.topics import read_records

pytestmark = pytest.mark.integration


def _rule(name: str, metric: str, threshold: float) -> str:
    return (
        f'[[rule]]\nname = "{name}"\nmatch = {{ kind = "metric", name = "{metric}" }}\n'
        f'signal = "mean"\nwindow = "1m"\nop = ">"\nthreshold = {threshold}\n\n'
    )


def _rules(worker) -> dict[str, dict[str, Any]]:
    status, body = worker.call("/rules")
    assert status == 200, body
    return {r["name"]: r for r in body["rules"]}


def _wait(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker never got there"
        time.sleep(0.3)


async def test_rules_reload_without_restart_and_keep_the_state_of_unchanged_rules(
    kafka_settings, start_worker, tmp_path
):
    path = tmp_path / "rules.toml"
    path.write_text(_rule("hot", "temp", 80) + _rule("busy", "load", 10))
    worker = start_worker(
        VIGIL_RULES=str(path), VIGIL_WINDOWS="1m", VIGIL_GRACE_SECONDS="1", VIGIL_IDLE_SECONDS="1"
    )
    await asyncio.to_thread(worker.wait_until, lambda s: bool(s.get("assigned")), 60)
    start = (int(time.time() * 1000) // 60_000 - 10) * 60_000
    async with Client(kafka_settings) as client:
        for minute in range(5):
            for metric, value in (("temp", 90.0), ("load", 50.0)):
                client.publish(
                    {
                        "kind": "metric",
                        "ts": start + minute * 60_000 + 59_000,
                        "service": "plant",
                        "name": metric,
                        "value": value,
                    }
                )
        assert await client.flush(30)

    def firing(*names: str) -> bool:
        rules = _rules(worker)
        return all(rules.get(n, {}).get("state") == "firing" for n in names)

    await asyncio.to_thread(_wait, lambda: firing("hot", "busy"))
    # Every window closed (the last by the idle clock, a second after its last event):
    # nothing moves but the reloads.
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("open_windows") == 0, 60)
    before = _rules(worker)
    (hot,) = before["hot"]["alerts"]

    # A file with a mistake is refused with its line; the running rules stay.
    path.write_text(_rule("hot", "temp", 80) + _rule("busy", "load", "ten"))
    status, body = worker.call("/-/reload", body={}, method="POST")
    assert status == 400 and any("rules.toml:" in e for e in body["errors"]), body
    assert _rules(worker) == before

    # "hot" moves down a line but is the same; "busy" changes; "cool" is new.
    path.write_text("# reordered\n" + _rule("busy", "load", 20) + _rule("hot", "temp", 80)
                    + _rule("cool", "temp", 100))  # fmt: skip
    status, body = worker.call("/-/reload", body={}, method="POST")
    assert status == 200 and body["rules"] == 3, body
    after = _rules(worker)
    assert sorted(after) == ["busy", "cool", "hot"]
    assert after["hot"]["state"] == "firing"
    assert after["hot"]["alerts"] == [hot], "the unchanged rule's alert kept its episode"
    assert (after["busy"]["state"], after["busy"]["alerts"]) == ("inactive", [])
    assert (after["busy"]["threshold"], after["cool"]["state"]) == (20.0, "inactive")

    # The changed rule's alert resolved on the alerts topic; the unchanged one did not.
    topic = Topics.for_namespace(kafka_settings.namespace).alerts
    records = await read_records(kafka_settings.kafka_bootstrap, topic, 3)
    transitions = [(a.rule, a.state) for a in map(Alert.decode, (r.value for r in records))]
    assert sorted(transitions) == [("busy", "firing"), ("busy", "resolved"), ("hot", "firing")]

    # SIGHUP reads the file again too.
    path.write_text(_rule("hot", "temp", 80))
    os.kill(worker.proc.pid, signal.SIGHUP)
    await asyncio.to_thread(_wait, lambda: sorted(_rules(worker)) == ["hot"])
    assert _rules(worker)["hot"]["alerts"] == [hot]
    status, body = worker.call("/rules")
    assert body["reloads"] == {"done": 2} and body["last_error"] is None
    assert worker.stop() == 0

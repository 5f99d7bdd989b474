"""Alerting end to end: a latency regime shift in a workflow fires an alert on the alerts
topic, in ClickHouse and at a webhook, then resolves; a SIGKILL in between duplicates no
transition; the raw messages, read by aiokafka and by Debian's kcat, are the documented
JSON."""

from __future__ import annotations

import asyncio
import http.server
import json
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from producers.alerts import Alert, subscribe_alerts
from producers.client import Client
from tests.conftest import open_store
from tests.schema import validate_alert
from vigil.embedded import free_port

pytestmark = pytest.mark.integration

MIN = 60_000
RULES = """
[channel.hook]
url = "http://127.0.0.1:{port}/hook"
timeout = "2s"
retries = 3
states = ["pending", "firing", "resolved"]

[[rule]]
name = "slow_transform"
match = {{ kind = "step.end", name = "etl", step = "transform" }}
signal = "p95"
window = "1m"
op = ">"
threshold = 20000
recovery = 15000
min_count = 5
for = "2m"
severity = "critical"
labels = {{ team = "data" }}
annotations = {{ summary = "etl/transform p95 is {{value:.0f}} ms" }}
"""


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver that records every body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _step_ends(base: int, minutes: range, slow: range, seed: int) -> list[dict]:
    """20 runs a minute of etl's transform step: ~9 s, ~40 s during ``slow``."""
    rng = random.Random(seed)
    out = []
    for m in minutes:
        for i in range(20):
            ms = (40_000 if m in slow else 9_000) * rng.uniform(0.9, 1.1)
            out.append(
                {"kind": "step.end", "ts": base + m * MIN + i * 2_900, "service": "pipeline",
                 "name": "etl", "execution_id": f"e{m}-{i}", "step": "transform",
                 "value": round(ms, 1), "ok": True}
            )  # fmt: skip
    return out


async def _publish(settings, events) -> None:
    async with Client(settings) as pub:
        for event in events:
            assert pub.publish(event)
        assert await pub.flush(60)


async def _collect(
    bootstrap: str, namespace: str, until, timeout: float = 90, **options: bool
) -> list[Alert]:
    """Every alert on the topic from the beginning, until ``until(alerts)`` holds."""
    seen: list[Alert] = []

    async def run() -> None:
        async for alert in subscribe_alerts(
            bootstrap, namespace=namespace, from_beginning=True, **options
        ):
            seen.append(alert)
            if until(seen):
                return

    await asyncio.wait_for(run(), timeout)
    return seen


def _http(worker, path: str, body: dict | None = None) -> dict:
    status, answer = worker.call(path, body)
    assert status in (200, 201), (status, answer)
    return answer


async def test_a_latency_shift_fires_and_resolves_once_across_a_sigkill(
    kafka_settings, start_worker, broker, namespace, tmp_path, kcat
):
    receiver = Receiver()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.format(port=receiver.server_address[1]))
    env = {"VIGIL_RULES": str(rules), "VIGIL_GRACE_SECONDS": "5", "VIGIL_WINDOWS": "1m"}
    base = (int(time.time() * 1000) - 90 * MIN) // MIN * MIN
    slow = range(20, 30)
    await _publish(kafka_settings, _step_ends(base, range(0, 30), slow, seed=1))

    # A long checkpoint interval: the kill comes after the alerts are published and before
    # their state is checkpointed, so the restarted worker makes them again.
    worker = start_worker(VIGIL_CHECKPOINT_SECONDS="60", **env)
    firing = await _collect(broker.bootstrap, namespace, lambda s: s[-1].state == "firing")
    assert [a.state for a in firing] == ["pending", "firing"]
    fp = firing[-1].fingerprint
    (listed,) = _http(worker, "/alerts")["alerts"]
    assert (listed["fingerprint"], listed["status"]) == (fp, "firing")
    acked = _http(worker, f"/alerts/{fp}/ack", {"by": "ana"})
    assert acked == {"acknowledged": fp, "by": "ana"}
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(10)

    worker = start_worker(**env)
    # The replay makes both transitions again: neither is published twice; the
    # acknowledgement is read back from the control topic and still shows.
    worker.wait_until(lambda s: s.get("firing") == 1 and s.get("alerts_replayed", 0) >= 2)
    assert _http(worker, "/alerts")["alerts"][0]["acked_by"] == "ana"
    await _publish(kafka_settings, _step_ends(base, range(30, 45), slow, seed=2))
    alerts = await _collect(broker.bootstrap, namespace, lambda s: s[-1].state == "resolved")
    # The first worker delivered two, this one the third.
    worker.wait_until(lambda s: s["channels"]["hook"].get("delivered") == 1)
    assert worker.stop() == 0

    # On the topic: each transition once, numbered without gaps.
    assert [(a.state, a.seq) for a in alerts] == [("pending", 1), ("firing", 2), ("resolved", 3)]
    pending, fired, resolved = alerts
    assert {a.fingerprint for a in alerts} == {fp}
    assert (pending.at, fired.at, resolved.at) == (
        base + 21 * MIN,
        base + 23 * MIN,
        base + 31 * MIN,
    )
    assert fired.started_at == pending.at and fired.value > 20_000 and resolved.value < 15_000
    assert fired.labels["team"] == "data" and fired.severity == "critical"
    assert fired.annotations["summary"] == f"etl/transform p95 is {fired.value:.0f} ms"

    # At the webhook: the same transitions, once each.
    assert [b["id"] for b in receiver.bodies] == [a.id for a in alerts]
    receiver.shutdown()

    # In ClickHouse: the same, once each.
    with open_store(Path(worker.env["VIGIL_DATA_DIR"])) as ch:
        rows = ch.query(
            "SELECT id, state, toUnixTimestamp64Milli(at), value "
            "FROM vigil.alerts FINAL ORDER BY seq"
        ).result_rows
    assert rows == [(a.id, a.state, a.at, a.value) for a in alerts]

    # Read raw, without Vigil's subscriber: the documented JSON, every field of
    # producers.Alert and no other, keyed by fingerprint.
    raw = await _raw_messages(broker.bootstrap, f"{namespace}.alerts.v1")
    assert [key for key, _ in raw] == [fp.encode()] * len(alerts)
    parsed = [json.loads(value) for _, value in raw]
    for message in parsed:
        validate_alert(message)  # the document, docs/alert.v1.schema.json
    assert sorted(parsed, key=lambda p: p["seq"]) == [a.to_dict() for a in alerts]

    # Read by kcat, a client Vigil did not write: the same keys and the same JSON.
    topic = f"{namespace}.alerts.v1"
    read = subprocess.run(
        [*kcat, "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert read.returncode == 0, read.stderr
    envelopes = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
    assert {e["key"] for e in envelopes} == {fp} and {e["topic"] for e in envelopes} == {topic}
    by_kcat = sorted((json.loads(e["payload"]) for e in envelopes), key=lambda p: p["seq"])
    for message in by_kcat:
        validate_alert(message)
    assert by_kcat == [a.to_dict() for a in alerts]


async def _raw_messages(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        out = []
        while batch := await consumer.getmany(timeout_ms=2000):
            out += [(m.key, m.value) for ms in batch.values() for m in ms]
        return out
    finally:
        await consumer.stop()


async def test_a_silenced_transition_is_stored_and_published_flagged_but_not_delivered(
    kafka_settings, start_worker, broker, namespace, tmp_path
):
    receiver = Receiver()
    rules = tmp_path / "rules.toml"
    # Two rules on the same series: the silence (team=data) covers the first only, so the
    # webhook getting the second one's transitions shows delivery works in this very run.
    twin = RULES.split("[[rule]]")[1].replace('"slow_transform"', '"slow_transform_ops"')
    text = RULES + "\n[[rule]]" + twin.replace('team = "data"', 'team = "ops"')
    rules.write_text(text.format(port=receiver.server_address[1]).replace('"2m"', '"0s"'))
    worker = start_worker(VIGIL_RULES=str(rules), VIGIL_GRACE_SECONDS="5")
    worker.wait_until(lambda s: "channels" in s)
    silence = _http(worker, "/silences", {"matchers": {"team": "data"}, "duration": "1h"})
    (listed,) = _http(worker, "/silences")["silences"]
    assert listed["id"] == silence["id"] and listed["active"]
    base = (int(time.time() * 1000) - 60 * MIN) // MIN * MIN
    await _publish(kafka_settings, _step_ends(base, range(0, 10), range(3, 6), seed=3))
    alerts = await _collect(
        broker.bootstrap,
        namespace,
        lambda s: sum(a.state == "resolved" for a in s) == 2,
        include_silenced=True,
    )
    by_rule = {
        rule: [(a.state, a.silenced) for a in alerts if a.rule == rule]
        for rule in ("slow_transform", "slow_transform_ops")
    }
    assert by_rule == {
        "slow_transform": [("firing", True), ("resolved", True)],
        "slow_transform_ops": [("firing", False), ("resolved", False)],
    }
    worker.wait_until(lambda s: s["channels"]["hook"].get("delivered") == 2)
    delivered = [(b["rule"], b["state"]) for b in receiver.bodies]
    assert delivered == [("slow_transform_ops", "firing"), ("slow_transform_ops", "resolved")]
    assert worker.stats()["alerts"] == 4
    assert worker.stop() == 0
    receiver.shutdown()
    with open_store(Path(worker.env["VIGIL_DATA_DIR"])) as ch:
        rows = ch.query(
            "SELECT rule, state, silenced FROM vigil.alerts FINAL ORDER BY rule, seq"
        ).result_rows
    assert rows == [
        ("slow_transform", "firing", True),
        ("slow_transform", "resolved", True),
        ("slow_transform_ops", "firing", False),
        ("slow_transform_ops", "resolved", False),
    ]

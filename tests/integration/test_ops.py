"""Operating a worker: probes, its own metrics, the API token, JSON logs, and a SIGTERM
that stores, checkpoints and commits everything it processed."""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from producers.alerts import read_from
from producers.client import Client
from producers.topics import Topics
from tests import librdkafka
from tests.conftest import open_store
from tests.malformed import malformed
from tests.samples import metric
from vigil import webclient

pytestmark = pytest.mark.integration


def _metrics(worker) -> dict[str, dict[tuple, float]]:
    status, _ = worker.call("/stats")
    assert status == 200
    return worker.metrics()


def _one(metrics, name: str) -> float:
    (value,) = metrics[name].values()
    return value


async def test_probes_metrics_token_and_json_logs(kafka_settings, start_worker):
    worker = start_worker()
    base = f"http://127.0.0.1:{worker.port}"
    deadline = time.monotonic() + 60
    while True:  # /ready says why it is not ready until it is
        try:
            status, body = webclient.call(f"{base}/ready", timeout=2)
        except webclient.Unreachable:
            status, body = None, None
        if status == 200:
            break
        assert status in (None, 503) and (body is None or body["reasons"]), body
        assert time.monotonic() < deadline, body
        time.sleep(0.3)
    assert body["status"] == "ready" and body["partitions"] == [0, 1, 2, 3]
    assert webclient.call(f"{base}/health")[0] == 200  # probes need no token

    # Every other page needs the token, compared in full.
    for token in (None, "wrong", worker.token + "x", worker.token[:-1]):
        status, body = webclient.call(f"{base}/stats", token=token)
        assert status == 401 and "Bearer" in body["error"], (token, status)
    assert webclient.call(f"{base}/metrics")[0] == 401
    assert webclient.call(f"{base}/history/workflows")[0] == 401

    bad = malformed(40)
    async with Client(kafka_settings) as pub:
        for i in range(500):
            assert pub.publish(metric(value=float(i)))
        for line, _ in bad:
            pub.publish_line("ops-test", line)
        assert await pub.flush(30)
    stats = worker.wait_until(lambda s: s.get("valid", 0) + s.get("rejected", 0) >= 540)
    metrics = _metrics(worker)
    assert _one(metrics, "vigil_events_valid_total") == stats["valid"] == 500
    assert _one(metrics, "vigil_deadletter_total") == stats["rejected"] == 40
    assert _one(metrics, "vigil_raw_rows_total") >= 500
    assert _one(metrics, "vigil_partitions_assigned") == 4
    assert _one(metrics, "vigil_sink_failing") == 0
    inserts = metrics["vigil_sink_insert_seconds_count"][()]
    assert inserts >= 1 and metrics["vigil_sink_insert_seconds_sum"][()] > 0
    assert metrics["vigil_sink_insert_seconds_bucket"][(("le", "+Inf"),)] == inserts
    lag = metrics["vigil_consumer_lag"]
    assert lag and all(v == 0 for v in lag.values()), lag  # everything read
    assert set(lag) <= {(("partition", str(p)),) for p in range(4)}

    assert worker.stop() == 0
    lines = [line for line in worker.log().splitlines() if line.strip()]
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    plain = [line for line in lines if not line.startswith("{")]
    assert logged and all({"ts", "level", "logger", "message"} <= set(r) for r in logged)
    assert all(line.startswith("vigil: ") for line in plain), plain[:5]
    assert worker.token not in worker.log()  # the token is never logged


async def test_without_a_configured_token_one_is_made_and_kept_private(start_worker, tmp_path):
    data = tmp_path / "own-token"
    worker = start_worker(VIGIL_API_TOKEN="", VIGIL_DATA_DIR=str(data))
    path = data / "api-token"
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert len(token) >= 40
    worker.env["VIGIL_API_TOKEN"] = token  # what a client reading the file sends
    worker.wait_until(lambda s: len(s.get("assigned", [])) == 4)
    url = f"http://127.0.0.1:{worker.port}/stats"
    assert webclient.call(url)[0] == 401
    assert worker.stop() == 0
    again = start_worker(VIGIL_API_TOKEN="", VIGIL_DATA_DIR=str(data))
    again.env["VIGIL_API_TOKEN"] = token  # the same token after a restart
    again.wait_until(lambda s: len(s.get("assigned", [])) == 4)


async def test_sigterm_stores_checkpoints_and_commits_everything_processed(
    kafka_settings, start_worker, broker, namespace, tmp_path
):
    """Checkpoints an hour apart: without the final one at SIGTERM nothing would be
    committed, and the next worker would replay every message."""
    env = {"VIGIL_CHECKPOINT_SECONDS": "3600", "VIGIL_DATA_DIR": str(tmp_path / "term")}
    worker = start_worker(**env)
    worker.wait_until(lambda s: len(s.get("assigned", [])) == 4)
    n = 3000
    now = int(time.time() * 1000)
    async with Client(kafka_settings) as pub:
        for i in range(n):
            assert pub.publish(
                metric(now - (n - i) * 100, float(i % 97), tags={"host": f"h{i % 7}"})
            )
        assert await pub.flush(30)
        envelopes = pub.stats()["envelopes"]
    stats = worker.wait_until(lambda s: s.get("messages", 0) >= envelopes, timeout=60)
    assert stats["offsets"] == {}, "no checkpoint yet: the hour has not passed"
    os.kill(worker.proc.pid, signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0

    topic = Topics.for_namespace(namespace).events
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=f"{namespace}-worker", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(4)]
        committed = {tp.partition: await consumer.committed(tp) or 0 for tp in tps}
        # The end of each partition, read (the embedded broker's ListOffsets answers
        # the base offset of the last batch + 1, under the real end).
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async for _ in read_from(consumer, tps):
            pass
        ends = {tp: await consumer.position(tp) for tp in tps}
    finally:
        await consumer.stop()
    assert committed == {tp.partition: ends[tp] for tp in tps}
    assert sum(ends.values()) == envelopes
    with open_store(tmp_path / "term") as ch:
        assert ch.query("SELECT count() FROM vigil.events").result_rows[0][0] == n
        saved = ch.query("SELECT count() FROM vigil.worker_state").result_rows[0][0]
    assert saved >= 1  # the final checkpoint

    again = start_worker(**env)
    again.wait_until(lambda s: len(s.get("assigned", [])) == 4)
    # One new event on each partition, after anything a replay would read: once all four
    # are applied, the worker has read whatever came before them.
    librdkafka.publish_clocks(kafka_settings, int(time.time() * 1000))
    after = again.wait_until(lambda s: s.get("valid", 0) >= 4, timeout=60)
    assert after["messages"] == 4 and after.get("replayed_messages", 0) == 0, after

"""10,000 hostile lines interleaved with valid events, published straight to Kafka (not
through the SDK, which would refuse most of them), some in envelopes of several MB.

Every valid event is stored once; every hostile line is in the dead-letter topic once,
with a reason and its original bytes; the counters agree; the worker never restarts.
"""

from __future__ import annotations

import collections
import random
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from producers.topics import Topics, ensure_topics
from tests.conftest import open_store
from tests.hostile import CATEGORIES, hostile
from tests.samples import metric
from tests.topics import read_records

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_HOSTILE = 10_000
N_VALID = 20_000


def _valid(i: int, now_ms: int) -> bytes:
    ts = now_ms - (N_VALID - i) * 50
    return orjson.dumps(metric(ts, float(i % 1000), service="fuzz", tags={"host": f"h{i % 13}"}))


def _envelopes(lines: list[bytes], rng: random.Random) -> list[bytes]:
    """Lines in envelopes of 1 to 80 lines, and a few huge ones (over 2 MB)."""
    out, i = [], 0
    while i < len(lines):
        n = rng.choice([1, 5, 20, 80]) if rng.random() > 0.01 else 3000
        out.append(b"\n".join(lines[i : i + n]))
        i += n
    return out


async def test_hostile_input_goes_to_the_dead_letter_topic_once_and_stops_nothing(
    kafka_settings, start_worker, worker_env
):
    rng = random.Random(11)
    now = int(time.time() * 1000)
    bad = list(hostile(N_HOSTILE, seed=3))
    assert {c for _, c in bad} == set(CATEGORIES)
    lines = [_valid(i, now) for i in range(N_VALID)] + [line for line, _ in bad]
    rng.shuffle(lines)
    envelopes = _envelopes(lines, rng)
    assert max(map(len, envelopes)) > 2 << 20

    worker = start_worker()
    started = worker.wait_until(lambda s: len(s.get("assigned", [])) == 4)
    topics = Topics.for_namespace(kafka_settings.namespace)
    await ensure_topics(kafka_settings.kafka_bootstrap, topics, 4)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.kafka_bootstrap,
        acks="all",
        max_request_size=16 << 20,
        max_batch_size=1 << 20,
    )
    await producer.start()
    try:
        for k, envelope in enumerate(envelopes):
            await producer.send(topics.events, envelope, partition=k % 4)
        await producer.flush()
    finally:
        await producer.stop()

    final = worker.wait_until(
        lambda s: s.get("valid", 0) + s.get("rejected", 0) >= len(lines), timeout=300
    )
    assert (final["valid"], final["rejected"]) == (N_VALID, N_HOSTILE)
    assert final.get("decode_errors", 0) == 0
    assert final["started_at"] == started["started_at"], "the worker restarted"
    assert worker.proc.poll() is None
    assert worker.stop() == 0

    dead = await read_records(kafka_settings.kafka_bootstrap, topics.deadletter, N_HOSTILE, 120)
    copies = collections.Counter(r.value for r in dead)
    assert len(dead) == N_HOSTILE and max(copies.values()) == 1
    assert set(copies) == {line for line, _ in bad}  # the original bytes, each once
    reasons = collections.Counter()
    for record in dead:
        headers = dict(record.headers)
        reason = headers["vigil-reason"].decode()
        assert reason and headers["vigil-source-topic"].decode() == topics.events
        reasons[reason.split(":")[0].split(" ")[0]] += 1
    assert len(reasons) >= 6, reasons

    with open_store(Path(worker_env["VIGIL_DATA_DIR"])) as ch:
        stored = ch.query(
            "SELECT count(), uniqExact(partition, offset, idx), sum(value) FROM vigil.events"
        ).result_rows[0]
    assert stored == (N_VALID, N_VALID, sum(float(i % 1000) for i in range(N_VALID)))

"""Producers in other languages compress their batches (Java's clients commonly with lz4,
snappy or zstd): each codec Kafka defines, sent by librdkafka, reaches the worker and is
stored once. (Without cramjam, aiokafka reads gzip only: the worker could not read the
others.)"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from producers.events import partition_for, routing_key
from producers.topics import Topics, ensure_topics
from tests.conftest import open_store
from tests.samples import metric

pytestmark = pytest.mark.integration

CODECS = ("gzip", "snappy", "lz4", "zstd")
PER_CODEC = 400


async def test_batches_compressed_with_every_kafka_codec_are_stored_once(
    kafka_settings, start_worker, worker_env
):
    topics = Topics.for_namespace(kafka_settings.namespace)
    await ensure_topics(kafka_settings.kafka_bootstrap, topics, kafka_settings.events_partitions)
    worker = start_worker(VIGIL_WINDOWS="1m")
    start = int(time.time() * 1000) - 600_000
    sent = collections.Counter()
    for codec in CODECS:
        # librdkafka, as services in other languages publish: its own codecs, batches of
        # many records compressed together.
        producer = Producer(
            {
                "bootstrap.servers": kafka_settings.kafka_bootstrap,
                "acks": "all",
                "compression.type": codec,
                "linger.ms": 50,
            }
        )
        for i in range(PER_CODEC):
            event = metric(start + i * 1_000, float(i), name=f"codec_{codec}")
            key = routing_key(event)
            partition = partition_for(key, kafka_settings.events_partitions)
            producer.produce(topics.events, orjson.dumps(event), key=key, partition=partition)
        assert producer.flush(30) == 0, f"{codec}: not every message was delivered"
        sent[f"codec_{codec}"] = PER_CODEC
    total = sum(sent.values())
    final = worker.wait_until(lambda s: s.get("valid", 0) >= total, timeout=120)
    assert final["valid"] == total and final.get("rejected", 0) == 0
    assert worker.stop() == 0
    with open_store(Path(worker_env["VIGIL_DATA_DIR"])) as ch:
        stored = dict(
            ch.query(
                "SELECT name, count() FROM vigil.events WHERE name LIKE 'codec_%' GROUP BY name"
            ).result_rows
        )
        positions = ch.query(
            "SELECT uniqExact(partition, offset, idx) FROM vigil.events WHERE name LIKE 'codec_%'"
        ).result_rows[0][0]
    assert stored == dict(sent) and positions == total

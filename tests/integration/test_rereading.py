"""Reading a partition's messages again on the embedded broker (``streams.rereading``):
the stretch asked for, from the group's commit when that is later, in parts."""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.rereading import read_range

pytestmark = pytest.mark.integration


async def _offsets(bootstrap: str, topic: str, start: int, end: int, **options) -> list[list]:
    """What :func:`read_range` yields: each part's (offset, value) pairs."""
    return [
        [(r.offset, r.value) for r in part]
        async for part in read_range(bootstrap, topic, 1, start, end, {}, **options)
    ]


async def test_a_stretch_is_read_again_from_the_groups_commit_in_parts(kafka_settings, namespace):
    bootstrap = kafka_settings.kafka_bootstrap
    topic, group = f"{namespace}-reread", f"{namespace}-g"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(topic, b"m%d" % i, partition=1)
        await producer.send_and_wait(topic, b"other", partition=0)
    finally:
        await producer.stop()
    # The group commits offset 10 of partition 1 (as its only member: the embedded
    # broker refuses a commit from outside the group).
    member = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group)
    await member.start()
    try:
        deadline = time.monotonic() + 60
        while len(member.assignment()) < 2:
            assert time.monotonic() < deadline, member.assignment()
            await member.getmany(timeout_ms=200, max_records=1)
        await member.commit({TopicPartition(topic, 1): 10})
    finally:
        await member.stop()

    def stretch(a: int, b: int) -> list[tuple[int, bytes]]:
        return [(i, b"m%d" % i) for i in range(a, b)]

    parts = await _offsets(bootstrap, topic, 5, 25, group=group, most=4)
    assert [o for part in parts for o in part] == stretch(10, 25), "from the commit"
    assert all(0 < len(part) <= 4 for part in parts)
    parts = await _offsets(bootstrap, topic, 12, 25, group=group)
    assert [o for part in parts for o in part] == stretch(12, 25), "the start is later"
    parts = await _offsets(bootstrap, topic, 5, 25)
    assert [o for part in parts for o in part] == stretch(5, 25), "no group: from the start"
    parts = await _offsets(bootstrap, topic, 0, 30, group=f"{namespace}-nobody")
    assert [o for part in parts for o in part] == stretch(0, 30), "a group without a commit"
    assert await _offsets(bootstrap, topic, 20, 20, group=group) == [], "nothing to read"

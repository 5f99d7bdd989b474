"""``subscribe_alerts`` as a consumer of the alerts topic uses it: from the end by
default, and with a group, resuming after the last alert it handled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from producers.alerts import Alert, subscribe_alerts
from producers.topics import Topics, ensure_topics
from tests.samples import alert_transitions
from tests.schema import validate_alert

pytestmark = pytest.mark.integration


async def _publish(settings, alerts: list[Alert]) -> None:
    topics = Topics.for_namespace(settings.namespace)
    await ensure_topics(settings.kafka_bootstrap, topics, settings.events_partitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for a in alerts:  # one partition: their order is the topic's
            await producer.send_and_wait(
                topics.alerts, a.line(), key=a.fingerprint.encode(), partition=0
            )
    finally:
        await producer.stop()


async def _take(n: int, settings, **options) -> list[str]:
    """The ids of the first ``n`` alerts a subscriber yields; then it stops."""
    out: list[str] = []
    subscription = subscribe_alerts(
        settings.kafka_bootstrap, namespace=settings.namespace, **options
    )
    async with contextlib.aclosing(subscription) as alerts:
        async for alert in alerts:
            out.append(alert.id)
            if len(out) == n:
                break
    return out


async def test_a_group_resumes_after_the_last_alert_it_handled(kafka_settings):
    alerts = alert_transitions()[:5]
    await _publish(kafka_settings, alerts)
    ids = [a.id for a in alerts]
    first = await asyncio.wait_for(_take(2, kafka_settings, group="pager"), 60)
    assert first == ids[:2]  # a new group starts at the oldest kept
    # Stopped after two: the first was committed when the second was asked for; the
    # second was never followed by a request, so it may not have been handled (a handler
    # that raised closes the subscription the same way) and comes again: at least once,
    # however the fetch was batched (before, the whole batch came again).
    second = await asyncio.wait_for(_take(4, kafka_settings, group="pager"), 60)
    assert second == ids[1:]
    other = await asyncio.wait_for(_take(5, kafka_settings, group="audit"), 60)
    assert other == ids  # another group has its own place


async def test_without_a_group_a_subscriber_starts_at_the_end(kafka_settings):
    """Three alerts before it subscribes, then one new alert at a time until it reads one:
    the first it yields is one of the new ones (from the beginning it would be the first
    of the three). No sleep guesses when it has found the end."""
    before = alert_transitions()[:3]
    await _publish(kafka_settings, before)
    template = alert_transitions()[3]
    got: list[str] = []
    subscription = subscribe_alerts(
        kafka_settings.kafka_bootstrap, namespace=kafka_settings.namespace
    )

    async def read() -> None:
        async with contextlib.aclosing(subscription) as stream:
            async for alert in stream:
                got.append(alert.id)
                return

    reading = asyncio.create_task(read())
    after: list[str] = []
    async with asyncio.timeout(60):
        while not reading.done():
            seq = 1000 + len(after)
            new = msgspec.structs.replace(template, id=f"{template.fingerprint}-{seq}", seq=seq)
            await _publish(kafka_settings, [new])
            after.append(new.id)
            await asyncio.wait([reading], timeout=0.5)
    await reading
    assert len(got) == 1 and got[0] in after, (got, [a.id for a in before], after)


async def test_vigil_alerts_tail_prints_each_transition_once_as_the_documented_json(
    kafka_settings, tmp_path
):
    alerts = alert_transitions()[:6]
    silenced = msgspec.structs.replace(alerts[5], silenced=True)
    fp = alerts[0].fingerprint
    alerts.append(msgspec.structs.replace(alerts[0], id=f"{fp}-99", seq=99))
    # A repeat and a silenced one, then one more: when that one is printed, the two
    # before it were read and left out.
    await _publish(kafka_settings, [*alerts[:5], alerts[0], silenced, alerts[6]])
    env = {
        **os.environ,
        "VIGIL_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "VIGIL_NAMESPACE": kafka_settings.namespace,
    }
    command = [sys.executable, "-m", "vigil.cli", "alerts", "tail", "--from-beginning", "--json"]
    tail = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = await asyncio.wait_for(
            asyncio.to_thread(lambda: [tail.stdout.readline() for _ in range(6)]), 60
        )
    finally:
        tail.send_signal(signal.SIGINT)
        assert tail.wait(30) == 0  # Ctrl-C ends it cleanly
    printed = [json.loads(line) for line in lines]
    for message in printed:
        validate_alert(message)
    assert [m["id"] for m in printed] == [a.id for a in (*alerts[:5], alerts[6])]
    assert tail.stdout.read() == ""

"""The delivery protocol (streams.delivery) on in-memory fakes of the store and the topics:
each processed batch stored, then published, then checkpointed, then acknowledged; and a
crash between any two of those steps, followed by a restart that replays from the last
commit, stores and publishes every alert transition once and loses no window.

The batches are real: a Processor over a simulated workflow engine with a rule that fires
and resolves every few minutes, two partitions, one bad line in each tenth envelope.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import random
from collections.abc import Awaitable
from typing import Any

import orjson
import pytest

from producers.envelopes import EnvelopeBuilder
from sinks.rows import RawRows
from streams.delivery import LINES_AT_ONCE, Delivery, WriterFailed, window_envelopes
from streams.processing import Processor
from streams.records import BatchResult
from streams.routing import HEADER, Forward
from streams.stats import WorkerStats
from streams.windows import parse_windows
from tests.delivery_world import (
    MESSAGES,
    PARTITIONS,
    RULES,
    START,
    STEPS,
    TOPICS,
    Crash,
    FakeOutbox,
    FakeSink,
    World,
)


def worker(world: World, **options: Any) -> tuple[Processor, Delivery]:
    """A worker started on ``world``: states from the last checkpoint, alert positions
    from the store and the topic; ``options`` for its Delivery."""
    processor = Processor(
        windows=parse_windows("1m"), grace_ms=0, source="c/t", idle_ms=10**12, rules=RULES
    )
    delivery = Delivery(
        FakeSink(world),
        FakeOutbox(world),
        TOPICS,
        stats=WorkerStats(started=0.0),
        clock=lambda: 0.0,
        **options,
    )
    for p in PARTITIONS:
        saved = world.states.get(p)
        processor.load(p, saved[1] if saved else None, world.raw_stored.get(p, -1))
        delivery.take_over(
            p,
            published=max((s for q, s in world.alerts_published if q == p), default=0),
            stored=max((s for q, s in world.alerts_stored if q == p), default=0),
        )
    return processor, delivery


async def run(world: World, *, batch: int = 6, every: int = 2) -> bool:
    """Consume from the committed offsets to the end, ``batch`` messages a batch, a
    checkpoint every ``every`` batches, then a final checkpoint. False if it crashed."""
    processor, delivery = worker(world)

    def ack(partition: int, offset: int) -> Awaitable[None]:
        async def done() -> None:
            world.log.append(("ack", (partition, offset)))
            world.step("ack")
            world.commit(partition, offset)

        return done()

    todo = [m for m in MESSAGES if m[1] > world.committed.get(m[0], -1)]
    try:
        for n, i in enumerate(range(0, len(todo), batch)):
            part = todo[i : i + batch]
            result = processor.process(part, now_ms=START, checkpoint=n % every == every - 1)
            await delivery.put(result, [functools.partial(ack, p, o) for p, o, _ in part])
        # Everything held counts as backlogged: no window closes by the clock.
        end = processor.tick(now_ms=START, checkpoint=True, backlogged=set(PARTITIONS))
        await delivery.handover(end)
    except WriterFailed as exc:
        assert isinstance(exc.__cause__, Crash), exc.__cause__
        return False
    finally:
        await delivery.drain()
        crashed = isinstance(delivery.error, Crash)
        world.positions = dict(delivery.published), dict(delivery.stored_alerts)
        await delivery.close()
    return not crashed


@functools.cache
def reference() -> World:
    world = World()
    assert asyncio.run(run(world))
    return world


def test_the_reference_run_makes_enough_of_everything_to_compare():
    world = reference()
    assert len(world.alerts_stored) >= 20, world.alerts_stored
    assert len(world.windows_stored) >= 100
    assert world.topic_counts[TOPICS.deadletter] >= 10
    assert world.committed == {p: max(m[1] for m in MESSAGES if m[0] == p) for p in PARTITIONS}
    # What the worker says (/stats published_seq) is what the topic and the store hold.
    highest = {p: max(s for q, s in world.alerts_published if q == p) for p in PARTITIONS}
    assert world.positions == (highest, highest)


@pytest.mark.parametrize("at", [0.0, 0.1, 0.3, 0.5, 0.7, 0.97])
@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_in_any_step_then_a_restart_stores_and_publishes_each_transition_once(
    step, at
):
    """Killed the first time a step runs, or at points from a tenth to nearly all the way
    through the run (as many times as the reference run makes that step), then restarted."""
    ref = reference()
    world = World(crash=(step, 1 + int(at * (ref.calls[step] - 1))))
    assert not await run(world), "the worker died where it was told to"
    world.crash = None
    assert await run(world), "the restarted worker finished"
    # Nothing missing, nothing twice, on both sides (the reference made each once).
    assert collections.Counter(world.alerts_stored) == collections.Counter(ref.alerts_stored)
    assert collections.Counter(world.alerts_published) == collections.Counter(ref.alerts_published)
    assert sorted(world.published_lines) == sorted(ref.published_lines)
    # Every window stored and published, every dead letter published: at least once (a
    # repeat is the store's to drop, by its deduplication token; consumers of the topics
    # are told to expect one).
    assert world.windows_stored == ref.windows_stored
    assert world.windows_published == ref.windows_published
    assert world.dead_letters == ref.dead_letters
    assert world.commits_past_checkpoint == [], "a message committed before its state was saved"
    assert world.committed == ref.committed


async def test_each_batch_is_stored_then_published_then_checkpointed_then_acknowledged():
    world = World()
    processor, delivery = worker(world)
    acked = []

    async def ack(offset: int) -> None:
        acked.append(offset)
        world.log.append(("ack", offset))

    world.held.clear()  # the broker has not confirmed anything yet
    part = MESSAGES[:40]
    result = processor.process(part, now_ms=START, checkpoint=True)
    assert result.alerts and result.closed and result.rejected
    await delivery.put(result, [functools.partial(ack, o) for _, o, _ in part])
    for _ in range(20):
        await asyncio.sleep(0)
    assert [s for s, _ in world.log] == ["store"], "nothing checkpointed before it is delivered"
    world.held.set()
    await delivery.drain()
    steps = [s for s, _ in world.log]
    first_sent, last_sent = steps.index("sent"), len(steps) - 1 - steps[::-1].index("sent")
    assert steps[0] == "store" and first_sent == 1
    assert steps[last_sent + 1] == "checkpoint"
    assert steps[last_sent + 2 :] == ["ack"] * len(part)
    assert acked == [o for _, o, _ in part]
    await delivery.close()


async def test_messages_are_acknowledged_at_the_checkpoint_that_covers_them_not_before():
    world = World()
    processor, delivery = worker(world)
    acked: list[int] = []

    async def ack(offset: int) -> None:
        acked.append(offset)

    first, second = MESSAGES[:4], MESSAGES[4:8]
    await delivery.put(
        processor.process(first, now_ms=START, checkpoint=False),
        [functools.partial(ack, o) for _, o, _ in first],
    )
    await delivery.drain()
    assert acked == [] and world.states == {}
    await delivery.put(
        processor.process(second, now_ms=START, checkpoint=True),
        [functools.partial(ack, o) for _, o, _ in second],
    )
    await delivery.drain()
    assert acked == [o for _, o, _ in first + second]
    assert {p: s[0] for p, s in world.states.items()} == {0: 3, 1: 3}
    await delivery.close()


async def test_a_handover_waits_for_the_batch_in_flight_then_saves_the_state_it_made():
    """A revoke mid-batch: the batch being published finishes, then the checkpoint of the
    state it made is stored, then its messages are acknowledged."""
    world = World()
    processor, delivery = worker(world)
    acked: list[int] = []

    async def ack(offset: int) -> None:
        acked.append(offset)
        world.log.append(("ack", offset))

    world.held.clear()
    part = MESSAGES[:20]
    await delivery.put(
        processor.process(part, now_ms=START, checkpoint=False),
        [functools.partial(ack, o) for _, o, _ in part],
    )
    handover = asyncio.create_task(delivery.handover(processor.checkpoint()))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not handover.done() and world.states == {}
    world.held.set()
    await handover
    steps = [s for s, _ in world.log]
    assert steps[-len(part) - 2 :] == ["store", "checkpoint"] + ["ack"] * len(part)
    assert {p: s[0] for p, s in world.states.items()} == {
        p: max(o for q, o, _ in part if q == p) for p in PARTITIONS
    }
    await delivery.close()


async def test_a_store_that_fails_stops_the_writer_and_nothing_after_it_goes_out():
    world = World(crash=("store", 2))
    processor, delivery = worker(world)
    acked: list[int] = []

    async def ack(offset: int) -> None:
        acked.append(offset)

    for i in range(0, 12, 4):
        part = MESSAGES[i : i + 4]
        try:
            await delivery.put(
                processor.process(part, now_ms=START, checkpoint=True),
                [functools.partial(ack, o) for _, o, _ in part],
            )
        except WriterFailed as exc:
            assert isinstance(exc.__cause__, Crash)
            break
    await delivery.drain()
    assert isinstance(delivery.error, Crash)
    assert [s for s, _ in world.log].count("checkpoint") == 1
    assert acked == [o for _, o, _ in MESSAGES[:4]], "only the first batch, stored in full"
    with pytest.raises(WriterFailed):
        await delivery.put(BatchResult())
    await delivery.close()


async def test_a_delivery_the_broker_refuses_leaves_the_batch_unacknowledged():
    world = World()
    processor, delivery = worker(world)

    class Refused(Exception):
        pass

    async def refusing(topic: str, value: bytes, **kw: Any) -> Awaitable[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(Refused("not enough replicas"))
        return future

    delivery.outbox.send = refusing  # type: ignore[method-assign]
    acked: list[int] = []

    async def ack(offset: int) -> None:
        acked.append(offset)

    part = MESSAGES[:20]
    await delivery.put(
        processor.process(part, now_ms=START, checkpoint=True),
        [functools.partial(ack, o) for _, o, _ in part],
    )
    await delivery.drain()
    assert isinstance(delivery.error, Refused)
    assert acked == [] and world.states == {}
    await delivery.close()


async def test_a_silenced_transition_is_published_flagged_and_not_sent_to_webhooks():
    world = World()
    dispatched: list[Any] = []
    processor, delivery = worker(
        world,
        silenced=lambda labels, at: True,
        dispatch=lambda alerts, lines: dispatched.extend(alerts),
    )
    result = processor.process(MESSAGES[:40], now_ms=START, checkpoint=True)
    assert result.alerts
    await delivery.put(result)
    await delivery.drain()
    published = [orjson.loads(line) for line in world.published_lines]
    assert published and all(a["silenced"] for a in published)
    assert all(a.silenced for a in dispatched) and len(dispatched) == len(published)
    await delivery.close()


async def test_each_message_goes_to_its_topic_on_the_partition_of_its_series():
    """Absolute, not against another run: alerts keyed by fingerprint on their series'
    partition, windows on theirs, dead letters with the headers the README documents;
    and the counts /stats shows."""
    world = World()
    seen: list[tuple[Any, Any]] = []
    processor, delivery = worker(world, silenced=lambda labels, at: bool(seen.append((labels, at))))
    result = processor.process(MESSAGES[:200], now_ms=START, checkpoint=True)
    alerts, closed, rejected = list(result.alerts), list(result.closed), list(result.rejected)
    assert alerts and closed and rejected
    await delivery.put(result)
    await delivery.drain()
    by_topic: dict[str, list[tuple[Any, ...]]] = collections.defaultdict(list)
    for topic, key, partition, headers, value in world.handed:
        by_topic[topic].append((key, partition, headers, value))
    assert sorted((k, p) for k, p, _, _ in by_topic[TOPICS.alerts]) == sorted(
        (a.fingerprint.encode(), a.partition) for a in alerts
    )
    assert seen == [(a.labels, a.evaluated_at) for a in alerts], "silences asked per alert"
    windows = collections.Counter(r.partition for r in closed)
    lines = collections.Counter()
    for key, partition, _, value in by_topic[TOPICS.windows]:
        assert key is None and partition in PARTITIONS
        lines[partition] += len(value.splitlines())
    assert lines == windows, "each window on the partition of its series"
    expected = {
        (
            r.line,
            ("vigil-reason", r.reason.encode()),
            ("vigil-source-index", str(r.index).encode()),
            ("vigil-source-offset", str(r.offset).encode()),
            ("vigil-source-partition", str(r.partition).encode()),
            ("vigil-source-topic", TOPICS.events.encode()),
        )
        for r in rejected
    }
    assert world.dead_letters == expected
    counts = delivery.stats.counts
    assert (counts["alerts"], counts["alerts_replayed"]) == (len(alerts), 0)
    # The same batch again (a replay): nothing published twice, each skip counted.
    again = processor.process(MESSAGES[:0], now_ms=START)
    again.alerts = alerts
    await delivery.put(again)
    await delivery.drain()
    assert (counts["alerts"], counts["alerts_replayed"]) == (len(alerts), len(alerts))
    assert len(by_topic[TOPICS.alerts]) == len([m for m in world.handed if m[0] == TOPICS.alerts])
    await delivery.close()


async def test_forwards_go_to_the_events_topic_on_their_target_with_their_hop_header():
    """Absolute: each forwarded envelope is handed to the events topic, unkeyed, on the
    partition of its series, with the vigil-hop header naming its lines' origin; the
    batch's time is the delivery's clock."""
    world = World()
    _, delivery = worker(world)
    delivery.clock = lambda: 1234.5
    forwards = [
        Forward(target=2, value=b'{"a":1}\n{"a":2}', header=b"0:17:0,0:17:1", count=2),
        Forward(target=0, value=b'{"b":1}', header=b"3:4:0", count=1),
    ]
    result = BatchResult(source="c/t", forwards=forwards)
    await delivery.put(result)
    await delivery.drain()
    handed = [m for m in world.handed if m[0] == TOPICS.events]
    assert handed == [
        (TOPICS.events, None, 2, {HEADER: b"0:17:0,0:17:1"}, b'{"a":1}\n{"a":2}'),
        (TOPICS.events, None, 0, {HEADER: b"3:4:0"}, b'{"b":1}'),
    ]
    assert delivery.stats.last_batch_at == 1234.5
    await delivery.close()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("at_once", [1, 7, LINES_AT_ONCE])
def test_window_envelopes_are_the_envelope_builders_line_by_line(seed, at_once):
    """Cut run by run, the envelopes are those the SDK's builder makes adding each line,
    in its order: runs of a partition that come back, lines longer than the limit, and
    runs read in pieces of any length."""
    rng = random.Random(seed)
    partitions, lines = [], []
    for _ in range(rng.randrange(1, 40)):  # runs of one partition
        partition = rng.randrange(4)
        for _ in range(rng.randrange(1, 60)):
            partitions.append(partition)
            lines.append(b"x" * rng.choice((1, 20, 90, 150, 400)))
    for limit in (100, 300, 1_000, 512 * 1024):
        builder = EnvelopeBuilder(max_events=len(lines) + 1, max_bytes=limit)
        expected = []
        for partition, line in zip(partitions, lines, strict=True):
            full = builder.add(partition, line)
            if full is not None:
                expected.append((partition, full[0]))
        expected.extend((p, envelope) for p, envelope, _ in builder.drain())
        windows = zip(partitions, lines, strict=True)
        assert list(window_envelopes(windows, max_bytes=limit, at_once=at_once)) == expected


def test_closed_windows_travel_in_one_envelope_per_partition_or_in_parts_that_fit():
    processor, _ = worker(World())
    closed = processor.process(MESSAGES[:200], now_ms=START).closed
    assert len({r.partition for r in closed}) > 1 and len(closed) > 10
    result = BatchResult(source="c/t", closed=closed)

    def lines(envelopes: list[tuple[int, bytes]]) -> collections.Counter[tuple[int, bytes]]:
        return collections.Counter((p, line) for p, e in envelopes for line in e.splitlines())

    expected = collections.Counter((r.partition, r.line()) for r in closed)
    whole = list(window_envelopes(result.window_lines()))
    assert sorted(p for p, _ in whole) == sorted({r.partition for r in closed})
    assert lines(whole) == expected
    small = list(window_envelopes(result.window_lines(), max_bytes=2_000))  # a few a piece
    assert len(whole) < len(small) < len(closed)
    assert all(len(e) <= 2_000 for _, e in small)
    assert lines(small) == expected


async def test_windows_envelopes_wait_for_the_broker_once_their_bytes_reach_the_bound(
    monkeypatch,
):
    """Past ``WINDOWS_IN_FLIGHT`` bytes sent and not confirmed, the next windows envelope
    waits for the broker (each send's future holds its envelope): with a bound of one
    byte, one envelope at a time; every window still goes out once confirmed."""
    monkeypatch.setattr("streams.delivery.WINDOWS_IN_FLIGHT", 1)
    world = World()
    processor, delivery = worker(world)
    result = processor.process(MESSAGES[:200], now_ms=START)
    expected = sorted(r.line() for r in result.closed)
    assert len({r.partition for r in result.closed}) > 1  # an envelope a partition at least
    world.held.clear()  # the broker has not confirmed anything yet
    await delivery.put(result)
    for _ in range(20):
        await asyncio.sleep(0)
    assert [t for t, *_ in world.handed].count(TOPICS.windows) == 1
    world.held.set()
    await delivery.drain()
    assert delivery.error is None
    sent = [v for t, *_, v in world.handed if t == TOPICS.windows]
    assert len(sent) > 1
    assert sorted(line for v in sent for line in v.splitlines()) == expected
    await delivery.close()


async def test_a_delivered_batch_lets_go_of_its_windows_and_raw_rows_and_counts_them():
    world = World()
    processor, delivery = worker(world)
    processor.raw_rows = RawRows("c/t")  # the store's rows, as the worker's sink asks
    results = [processor.process(MESSAGES[i : i + 40], now_ms=START) for i in range(0, 200, 40)]
    # Counted here, before delivery, from what the processor returned.
    windows = sum(len(r.closed) for r in results)
    raw_rows = sum(len(raw.rows) for r in results for raw in r.raw.values())
    assert windows > 10 and raw_rows > 100
    for result in results:
        await delivery.put(result)
    await delivery.drain()
    assert delivery.error is None
    assert len(world.windows_stored) == windows
    assert all(r.closed == [] and not any(raw.rows for raw in r.raw.values()) for r in results)
    counts = delivery.stats.counts
    assert (counts["windows_closed"], counts["raw_rows"]) == (windows, raw_rows)
    await delivery.close()

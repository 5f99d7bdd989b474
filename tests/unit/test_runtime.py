"""The steps the worker's Faust signals call (streams.runtime), on the in-memory store and
topics of tests.delivery_world: a revoke while a batch waits on the broker, the final
checkpoint of a stop, acknowledgements from the control topic, and closing what was
started in reverse order."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
from typing import Any

import pytest

from producers.settings import KafkaSettings
from streams import runtime as runtime_module
from streams.processing import Processor
from streams.rules import RuleSet
from streams.runtime import Runtime
from streams.settings import WorkerSettings
from streams.windows import parse_windows
from tests.delivery_world import MESSAGES, PARTITIONS, RULES, START, FakeOutbox, FakeSink, World


def runtime(world: World, rules: RuleSet = RULES, **options: Any) -> Runtime:
    """A runtime whose processor holds both partitions (as after an assignment); its
    clock reads ``world.now_s`` (an hour after the events unless a test moves it; an idle
    partition's windows close by it), checkpoints are an hour apart."""
    world.now_s = START / 1000 + 3600
    settings = dataclasses.replace(WorkerSettings(), checkpoint_seconds=3600.0)
    rt = Runtime(
        settings,
        KafkaSettings(namespace="t"),
        FakeSink(world),  # type: ignore[arg-type]
        FakeOutbox(world),
        bootstrap="unused:9092",
        rules=rules,
        clock=lambda: world.now_s,
        monotonic=itertools.count().__next__,
        **options,
    )
    rt.processor = Processor(
        windows=parse_windows("1m"), grace_ms=0, source="c/t", idle_ms=5_000, rules=rules
    )
    for p in PARTITIONS:
        rt.processor.load(p, None, -1)
        rt.delivery.take_over(p, published=0, stored=0)
    rt.assign(PARTITIONS)
    return rt


def acks(world: World, part: list[tuple[int, int, bytes]]) -> list[Any]:
    async def ack(partition: int, offset: int) -> None:
        world.log.append(("ack", (partition, offset)))
        world.commit(partition, offset)

    return [functools.partial(ack, p, o) for p, o, _ in part]


async def test_a_revoke_while_a_batch_waits_on_the_broker_saves_the_state_it_made():
    world = World()
    rt = runtime(world)
    world.held.clear()  # the broker has confirmed nothing yet
    part = MESSAGES[:40]
    await rt.process(part, acks(world, part))
    revoking = asyncio.create_task(rt.revoke([0]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not revoking.done() and world.states == {}, "it waits for the batch in flight"
    world.held.set()
    await revoking
    last = {p: max(o for q, o, _ in part if q == p) for p in PARTITIONS}
    assert {p: s[0] for p, s in world.states.items()} == last
    assert world.committed == last, "every message acknowledged, covered by the checkpoint"
    assert world.commits_past_checkpoint == []
    assert rt.processor is not None and not rt.processor.owns(0) and rt.processor.owns(1)
    assert rt.stats.assigned == {1}
    await rt.close()


async def test_a_stop_checkpoints_every_partition_and_closes_no_window_early():
    world = World()
    rt = runtime(world)
    part = MESSAGES[:40]
    await rt.process(part, acks(world, part))
    await rt.delivery.drain()
    closed_before = rt.stats.counts["windows_closed"]
    open_before = sum(s.windows.open_windows for s in rt.processor.states.values())
    world.now_s += 60  # both partitions idle for a minute: only a stop would close them
    assert await rt.final_checkpoint()
    assert rt.stats.counts["windows_closed"] == closed_before
    assert sum(s.windows.open_windows for s in rt.processor.states.values()) == open_before
    last = {p: max(o for q, o, _ in part if q == p) for p in PARTITIONS}
    assert {p: s[0] for p, s in world.states.items()} == last and world.committed == last
    await rt.close()


async def test_an_acknowledgement_on_the_control_topic_reaches_the_firing_alert():
    world = World()
    rt = runtime(world)
    part = MESSAGES[:400]
    await rt.process(part, acks(world, part))
    await rt.delivery.drain()
    firing = [
        (p, a)
        for p, state in rt.processor.states.items()
        for a in state.evaluation.alerts()
        if a["status"] == "firing"
    ]
    assert firing, "the flapping rule fires within 400 envelopes"
    partition, alert = firing[0]
    rt.processor.dirty.clear()
    rt.apply_command(
        {
            "type": "ack",
            "fingerprint": alert["fingerprint"],
            "started_at": alert["started_at"],
            "by": "ops",
            "at": START,
        }
    )
    held = {a["fingerprint"]: a for a in rt.processor.states[partition].evaluation.alerts()}
    assert (held[alert["fingerprint"]]["acked_by"], alert["acked_by"]) == ("ops", None)
    assert rt.processor.dirty == {partition}, "the acknowledgement is checkpointed"
    await rt.close()


async def test_a_stop_closes_what_was_started_in_reverse_order_even_when_one_fails():
    closed: list[str] = []

    class Part:
        def __init__(self, name: str, fails: bool = False) -> None:
            self.name, self.fails = name, fails

        async def close(self) -> None:
            closed.append(self.name)
            if self.fails:
                raise OSError("already gone")

    rt = runtime(World())
    rt._started = [Part("store"), Part("webhooks", fails=True), Part("other")]
    await rt.close()
    assert closed == ["other", "webhooks", "store"]


async def test_a_partition_with_messages_waiting_is_not_idle_however_long_a_batch_took():
    """The backlog is read once the tick holds the state: a batch that held it for
    longer than the idle time leaves every partition without an arrival, yet their
    windows wait for the messages behind it; and so do those of a partition the
    consumer has not fetched yet."""
    world = World()
    rt = runtime(world)
    part = MESSAGES[:40]
    await rt.process(part, acks(world, part))
    assert rt.processor is not None
    processor = rt.processor
    open_before = sum(s.windows.open_windows for s in processor.states.values())
    assert open_before > 0
    backlog = dict.fromkeys(PARTITIONS, 0)  # as of the last fetch: all applied
    read_while_held: list[bool] = []
    batch_running = True

    def lag() -> dict[int, int]:
        read_while_held.append(batch_running)
        return dict(backlog)

    async with rt.state_lock:  # a batch is being processed
        ticking = asyncio.create_task(rt.tick(lag))
        for _ in range(20):
            await asyncio.sleep(0)
        world.now_s += 60  # it took a minute: both partitions look idle
        backlog[0] = backlog[1] = 7  # and more messages were fetched meanwhile
        batch_running = False
    await ticking
    assert read_while_held == [False]
    assert sum(s.windows.open_windows for s in processor.states.values()) == open_before
    backlog.clear()  # a consumer that knows no highwater (not fetched yet)
    await rt.tick(lag)
    assert sum(s.windows.open_windows for s in processor.states.values()) == open_before
    backlog.update(dict.fromkeys(PARTITIONS, 0))  # fetched, nothing waits: idle indeed
    await rt.tick(lag)
    assert sum(s.windows.open_windows for s in processor.states.values()) < open_before
    await rt.close()


async def test_a_batch_waits_for_its_partition_to_be_taken_over_and_then_applies_whole(
    monkeypatch,
):
    """A partition assigned back after a revoke, whose state the store does not give at
    first: the batch that brings its next messages waits, retrying, and then applies
    every one of them to the state the revoke saved (given up, the batch's messages
    would be gone for good: the stream reads on from the next). Compared with a worker
    that never lost the partition: the same state offsets and open windows, nothing
    skipped."""
    monkeypatch.setattr(runtime_module, "TAKEOVER_BACKOFF_MAX", 0.01)

    async def published(bootstrap: str, topic: str, partitions: set[int], **_: Any) -> dict:
        return dict.fromkeys(partitions, 0)  # the alerts topic: nothing published

    monkeypatch.setattr(runtime_module, "published_seqs", published)
    first, then = MESSAGES[:20], MESSAGES[20:40]
    assert {p for p, _, _ in then} == set(PARTITIONS)
    kept, moved = World(), World()
    reference, rt = runtime(kept), runtime(moved)
    for r, world in ((reference, kept), (rt, moved)):
        await r.process(first, acks(world, first))
    await rt.revoke([0])
    rt.assign([0])
    moved.unreadable = 3  # the next three queries of the store fail
    await rt.process(then, acks(moved, then))
    await reference.process(then, acks(kept, then))
    for r in (rt, reference):
        await r.delivery.drain()
    assert moved.unreadable == 0 and rt.stats.counts["takeover_retries"] == 3
    last = {p: max(o for q, o, _ in then if q == p) for p in PARTITIONS}
    for r in (rt, reference):
        assert r.processor is not None
        assert {p: s.offset for p, s in r.processor.states.items()} == last
    assert rt.stats.counts["state_gaps"] == 0
    assert {p: s.windows.snapshot() for p, s in rt.processor.states.items()} == {
        p: s.windows.snapshot() for p, s in reference.processor.states.items()
    }
    for r in (rt, reference):
        await r.close()


async def test_messages_the_consumer_went_past_at_a_take_over_are_read_again_first(monkeypatch):
    """A partition taken back whose consumer hands over its first message past what the
    checkpoint holds (the stream dropped the messages between during the rebalance):
    they are read again, from where a failed read stopped, and applied before it, so the
    windows equal a worker that never lost the partition and every message is
    acknowledged once. Later jumps in offsets are not read again: only the first batch
    after a take-over is looked at. Offsets the group's commit was set past on purpose
    are not read again either: they count as a state gap."""
    monkeypatch.setattr(runtime_module, "REREAD_BACKOFF_MAX", 0.01)

    async def published(bootstrap: str, topic: str, partitions: set[int], **_: Any) -> dict:
        return dict.fromkeys(partitions, 0)

    monkeypatch.setattr(runtime_module, "published_seqs", published)
    kept, moved = World(), World()
    by_offset = {(p, o): (p, o, v) for p, o, v in MESSAGES}
    reads: list[tuple[int, int, int]] = []

    async def reread(partition: int, start: int, end: int) -> Any:
        """From the group's commit when later, as the worker's reads do."""
        reads.append((partition, start, end))
        for offset in range(max(start, moved.committed.get(partition, -1) + 1), end):
            message = by_offset[partition, offset]
            yield [(message, acks(moved, [message])[0])]
            if len(reads) == 1 and offset == start + 1:
                raise ConnectionError("the broker does not answer")

    reference, rt = runtime(kept), runtime(moved, reread=reread)
    first, then = MESSAGES[:20], MESSAGES[20:60]
    for r, world in ((reference, kept), (rt, moved)):
        await r.process(first, acks(world, first))
    await rt.revoke([0])
    rt.assign([0])
    state_offset = max(o for p, o, _ in first if p == 0)
    dropped = [m for m in then if m[0] == 0][:5]  # fetched and dropped by the stream
    handed = [m for m in then if m not in dropped]
    await rt.process(handed, acks(moved, handed))
    await reference.process(then, acks(kept, then))
    for r in (rt, reference):
        await r.delivery.drain()
    resumed = dropped[0][1]
    assert resumed == state_offset + 1
    assert reads == [(0, resumed, resumed + 5), (0, resumed + 2, resumed + 5)]
    assert rt.stats.counts["reread_messages"] == 5 and rt.stats.counts["reread_retries"] == 1
    assert rt.stats.counts["state_gaps"] == 0
    assert rt.processor is not None and reference.processor is not None
    assert {p: s.windows.snapshot() for p, s in rt.processor.states.items()} == {
        p: s.windows.snapshot() for p, s in reference.processor.states.items()
    }
    later = MESSAGES[60:80]
    skipped = next(m for m in later if m[0] == 0)
    later = [m for m in later if m != skipped]
    await rt.process(later, acks(moved, later))
    await rt.delivery.drain()
    assert len(reads) == 2 and rt.stats.counts["state_gaps"] == 1, "not a take-over: not read"
    await rt.revoke([1])
    rt.assign([1])
    reset = MESSAGES[80:100]
    resumed = max(o for p, o, _ in later if p == 1) + 1
    moved.committed[1] = resumed + 2  # the group's offsets set past the state by hand
    reset = [m for m in reset if m[0] == 0 or m[1] > resumed + 2]
    await rt.process(reset, acks(moved, reset))
    await rt.delivery.drain()
    assert reads[2:] == [(1, resumed, resumed + 3)] and rt.stats.counts["reread_messages"] == 5
    assert rt.stats.counts["state_gaps"] == 2
    assert await rt.final_checkpoint()
    assert moved.commits_past_checkpoint == []
    applied = {p: max(o for q, o, _ in MESSAGES[:100] if q == p) for p in PARTITIONS}
    assert moved.committed == applied
    acked = [entry for kind, entry in moved.log if kind == "ack"]
    expected = sorted((p, o) for p, o, _ in [*MESSAGES[:80], *reset] if (p, o) != skipped[:2])
    assert sorted(acked) == expected, "each message acknowledged once, none missing"
    for r in (rt, reference):
        await r.close()


async def test_a_batch_the_processor_fails_on_stops_the_worker_before_anything_goes_out():
    """An error in the processor (a bug) mid-batch: the worker is failed at once (by
    default it exits, as a kill would, to replay from the last commit), and nothing of
    the batch is stored, published or acknowledged."""
    world, failed = World(), []
    rt = runtime(world, fail=failed.append)
    assert rt.processor is not None
    first, then = MESSAGES[:20], MESSAGES[20:40]
    await rt.process(first, acks(world, first))
    await rt.delivery.drain()
    stored, committed = list(world.log), dict(world.committed)
    applied = rt.processor.process

    def broken(messages: list, **kw: Any) -> Any:
        applied(messages[: len(messages) // 2], **kw)  # part of it applied, then a bug
        raise ZeroDivisionError("a bug")

    rt.processor.process = broken  # type: ignore[method-assign]
    with pytest.raises(ZeroDivisionError):
        await rt.process(then, acks(world, then))
    assert [type(e) for e in failed] == [ZeroDivisionError]
    await rt.delivery.drain()
    assert world.log == stored and world.committed == committed
    await rt.close()

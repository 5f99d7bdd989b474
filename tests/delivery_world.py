"""In-memory stand-ins for what outlives a worker (the store, the topics, the group's
committed offsets) and real batches to feed it: the delivery protocol and the runtime
are unit-tested on them (tests/unit/test_delivery.py, tests/unit/test_runtime.py)."""

from __future__ import annotations

import asyncio
import collections
import zlib
from collections.abc import Awaitable
from typing import Any

import orjson

from producers.topics import Topics
from sinks.rows import RawRows
from streams.metrics import Latency
from streams.records import BatchResult
from tests.samples import FLAPPING_RULES, ruleset

TOPICS = Topics.for_namespace("t")
START = 1_700_000_000_000
PARTITIONS = (0, 1)
STEPS = ("store", "publish", "checkpoint", "ack")


class Crash(Exception):
    """The worker process dies here."""


class World:
    """What outlives a worker: the store (ClickHouse), the topics and the group's committed
    offsets. ``crash`` = (step, n): the n-th time (from 1) that step runs, the worker dies
    in it (a store or a checkpoint is one batch, a publish or an ack one message)."""

    def __init__(self, crash: tuple[str, int] | None = None) -> None:
        self.crash = crash
        self.calls = collections.Counter[str]()
        self.log: list[tuple[str, Any]] = []
        # The store.
        self.alerts_stored: list[tuple[int, int]] = []
        self.windows_stored: set[tuple[str, str, int]] = set()
        self.states: dict[int, tuple[int, bytes]] = {}
        self.raw_stored: dict[int, int] = {}
        # The topics.
        self.alerts_published: list[tuple[int, int]] = []
        self.published_lines: list[bytes] = []
        self.dead_letters: set[tuple[bytes, ...]] = set()
        #: Every message handed to the producer: (topic, key, partition, headers, value).
        self.handed: list[tuple[str, Any, Any, Any, bytes]] = []
        self.windows_published: set[bytes] = set()
        self.topic_counts = collections.Counter[str]()
        # The group.
        self.committed: dict[int, int] = {}
        self.commits_past_checkpoint: list[tuple[int, int, int]] = []
        #: The highest alert seq per partition the last worker knew published and stored.
        self.positions: tuple[dict[int, int], dict[int, int]] = ({}, {})
        #: The wall clock of a worker living in this world, in seconds.
        self.now_s = 0.0
        #: Queries of the store that fail from now on, one fewer each time.
        self.unreadable = 0
        self.held = asyncio.Event()
        self.held.set()

    def step(self, name: str) -> None:
        self.calls[name] += 1
        if self.crash == (name, self.calls[name]):
            raise Crash(f"killed in {name} #{self.calls[name]}")

    def commit(self, partition: int, offset: int) -> None:
        """Acknowledging a message lets the group commit past it."""
        covered = self.states.get(partition, (-1, b""))[0]
        if offset > covered:
            self.commits_past_checkpoint.append((partition, offset, covered))
        self.committed[partition] = max(self.committed.get(partition, -1), offset)


class FakeSink:
    """The store's side of :class:`streams.delivery.Sink`, in memory."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.counts = collections.Counter[str]()
        self.latency = Latency()
        self.failing = False
        self.last_error: str | None = None
        self.inserting: str | None = None

    async def start(self) -> None:
        pass

    def raw_rows(self, source: str) -> RawRows:
        return RawRows(source)

    async def write(self, result: BatchResult, *, alerts: Any = None) -> None:
        w = self.world
        w.log.append(("store", len(result.closed)))
        w.step("store")
        await asyncio.sleep(0)
        w.windows_stored |= {(r.series, r.label, r.end_ms) for r in result.closed}
        stored = result.alerts if alerts is None else alerts
        w.alerts_stored += [(a.partition, a.seq) for a in stored]
        for p, raw in result.raw.items():
            w.raw_stored[p] = max(w.raw_stored.get(p, -1), raw.last)

    def _read(self) -> None:
        """A query of the store: it fails while ``world.unreadable`` counts down."""
        if self.world.unreadable > 0:
            self.world.unreadable -= 1
            raise ConnectionError("the store does not answer")

    async def stored_offsets(self, source: str) -> dict[int, int]:
        self._read()
        return dict(self.world.raw_stored)

    async def stored_alerts(self, source: str) -> dict[int, int]:
        self._read()
        highest: dict[int, int] = {}
        for partition, seq in self.world.alerts_stored:
            highest[partition] = max(highest.get(partition, 0), seq)
        return highest

    async def load_states(self, source: str, partitions: set[int]) -> dict[int, bytes]:
        self._read()
        return {p: s for p, (_, s) in self.world.states.items() if p in partitions}

    async def checkpoint(self, result: BatchResult) -> None:
        if not result.checkpoint:
            return  # the real sink writes nothing either
        w = self.world
        w.log.append(("checkpoint", sorted(result.states)))
        w.step("checkpoint")
        await asyncio.sleep(0)
        w.states.update(result.states)


class FakeOutbox:
    """The topics: a message is on its topic once its delivery completes. While
    ``world.held`` is clear, deliveries wait for it. The step ``publish`` is one message."""

    def __init__(self, world: World) -> None:
        self.world = world

    async def send(
        self, topic: str, value: bytes, *, key=None, partition=None, headers=None
    ) -> Awaitable[Any]:
        w = self.world
        w.step("publish")  # one message handed to the producer; those before it go out
        w.handed.append((topic, key, partition, headers, value))

        async def deliver() -> None:
            await w.held.wait()
            w.topic_counts[topic] += 1
            w.log.append(("sent", topic))
            if topic == TOPICS.deadletter:
                w.dead_letters.add((value, *sorted(headers.items())))
            if topic == TOPICS.windows:
                w.windows_published |= set(value.splitlines())
            if topic == TOPICS.alerts:
                alert = orjson.loads(value)
                w.alerts_published.append((alert["partition"], alert["seq"]))
                w.published_lines.append(value)

        return asyncio.ensure_future(deliver())


def envelopes() -> list[tuple[int, int, bytes]]:
    """Messages ``(partition, offset, value)`` of a simulated engine: each series always
    on the same partition, 20 events an envelope, a bad line in each tenth one."""
    from vigil.simulation import Simulation

    sim = Simulation(seed=7, start_ms=START)
    lines: dict[int, list[bytes]] = {p: [] for p in PARTITIONS}
    for event in sim.advance(15 * 60_000):
        lines[zlib.crc32(event["service"].encode()) % len(PARTITIONS)].append(orjson.dumps(event))
    out = []
    for p, ls in lines.items():
        for offset, i in enumerate(range(0, len(ls), 20)):
            chunk = ls[i : i + 20] + ([b"{bad"] if offset % 10 == 9 else [])
            out.append((p, offset, b"\n".join(chunk)))
    out.sort(key=lambda m: (m[1], m[0]))  # the two partitions interleaved
    return out


MESSAGES = envelopes()
RULES = ruleset(FLAPPING_RULES)

"""The pure core of the worker: envelopes in; raw rows, rejects and closed windows out.

No Kafka here: the Faust agent hands over ``(partition, offset, value)`` triples and
writes what :meth:`Processor.process` returns.

Replays are expected (after a crash Faust redelivers everything since the last commit),
so two positions are remembered per partition and whatever is at or below them is
skipped:

- ``stored``: the highest offset whose raw rows ClickHouse already holds (read from the
  store at assignment), for the raw rows;
- ``PartitionState.offset``: the highest offset already applied to the window state
  (saved with the state), for windows and dead letters.

Given the events topic's partition count, an event that arrived on a partition other
than its series' own is forwarded there (:mod:`streams.routing`) instead of applied.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from producers.envelopes import split
from producers.events import MAX_EVENT_BYTES, WORKFLOW_KINDS, InvalidEvent, decode, decode_all
from streams import chunked, collector
from streams.evaluation import Evaluation
from streams.executions import Executions
from streams.records import BatchResult, RawBatch, RawRowFormat, Rejected
from streams.routing import BadHeader, Forwards, Homes, Position, Received, read_header
from streams.rules import RuleSet
from streams.windows import WindowConfigError, Windows, WindowSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
#: A partition's raw rows are sealed into the store's form (``RawRowFormat.seal``) every
#: this many, so that a part of 100,000 events does not hold all its decoded events at
#: once: each held about three times the memory of its sealed row.
SEAL_ROWS = 10_000


@dataclass
class PartitionState:
    windows: Windows
    executions: Executions
    evaluation: Evaluation
    offset: int = -1
    #: Lines forwarded here from other partitions: the last applied from each.
    received: Received = field(default_factory=Received)

    def snapshot(self) -> bytes:
        """The state as JSON, its long lists (open windows, alert slots) encoded a chunk
        of rows at a time (:mod:`streams.chunked`), with the cyclic collector paused: its
        dicts and lists are as many as the state's objects, and none is in a cycle."""
        with collector.paused():
            return chunked.dumps(self.document(chunked.Rows))

    def packed(self) -> bytes:
        """:meth:`snapshot` compressed as it is made (``chunked.packed``): the checkpoint
        the store keeps, which :meth:`Processor.load` reads as it reads a snapshot."""
        with collector.paused():
            return chunked.packed(self.document(chunked.Rows))

    def document(self, rows: Callable[[Iterator[Any]], Any] = list) -> dict[str, Any]:
        """What :meth:`snapshot` encodes, its long lists made by ``rows`` (the windows'
        and the alerts' ``snapshot``)."""
        return {
            "offset": self.offset,
            "windows": self.windows.snapshot(rows),
            "executions": self.executions.snapshot(),
            "alerts": self.evaluation.snapshot(rows),
            "received": self.received.snapshot(),
        }

    def close(self, now_ms: int, out: BatchResult) -> bool:
        """Close the windows that are ready into ``out``, with the alert transitions and
        detector scores they (and the watermark they leave) make; True if any."""
        closed = self.windows.close_ready()
        evaluation = self.evaluation
        alerts = []
        for record in closed:
            alerts.extend(evaluation.window(record, now_ms=now_ms))
        alerts.extend(evaluation.advance(self.windows.watermark, now_ms=now_ms))
        scores = evaluation.take_scores()
        out.closed.extend(closed)
        out.alerts.extend(alerts)
        out.scores.extend(scores)
        return bool(closed or alerts or scores)


class Processor:
    def __init__(
        self,
        *,
        windows: tuple[WindowSpec, ...],
        grace_ms: int,
        source: str,
        idle_ms: int = 5_000,
        horizon_ms: int = 24 * 3600 * 1000,
        rules: RuleSet | None = None,
        partitions: int | None = None,
        raw_rows: RawRowFormat | None = None,
    ) -> None:
        """``partitions``: the events topic's partition count, to re-route events that
        arrived on another partition than their series' own; None applies every event
        where it arrives (one partition's view: a backtest, a unit test). ``raw_rows``:
        how the store keeps a batch's raw rows (the sink's ``raw_rows(source)``): each
        checked event is kept as a :data:`streams.records.RawRow`, sealed into the
        store's form every :data:`SEAL_ROWS`; None keeps only the offsets (a processor
        without a store)."""
        #: Identifies the Kafka log the offsets belong to (cluster id / topic), so that a
        #: fresh embedded broker, whose offsets restart at 0, is not mistaken for a replay.
        self.source = source
        self.specs = windows
        self.grace_ms = grace_ms
        self.idle_ms = idle_ms
        self.horizon_ms = horizon_ms
        self.rules = rules or RuleSet()
        self.states: dict[int, PartitionState] = {}
        #: Partitions whose state changed since the last checkpoint.
        self.dirty: set[int] = set()
        self.raw_rows = raw_rows
        self.stored: dict[int, int] = {}
        self.homes = Homes(partitions) if partitions else None
        self._told: set[str] = set()  # services warned of events off their partition

    # -- partition lifecycle -----------------------------------------------------------
    def load(self, partition: int, snapshot: bytes | None, stored_offset: int) -> None:
        """Take over ``partition`` from its saved state (:meth:`PartitionState.packed`, or
        a :meth:`~PartitionState.snapshot` as stored before checkpoints were compressed)
        and the store's position (the state read with the cyclic collector paused, as it
        is made)."""
        with collector.paused():
            self._load(partition, snapshot, stored_offset)

    def _load(self, partition: int, snapshot: bytes | None, stored_offset: int) -> None:
        options = {"grace_ms": self.grace_ms, "partition": partition, "idle_ms": self.idle_ms}
        horizon = {"horizon_ms": self.horizon_ms}
        state = PartitionState(
            Windows(self.specs, **options), Executions(**horizon), Evaluation(self.rules, partition)
        )
        if snapshot:
            data = chunked.loads(snapshot)
            executions = Executions.restore(data["executions"], **horizon)
            evaluation = state.evaluation
            if "alerts" in data:
                evaluation = Evaluation.restore(data["alerts"], self.rules, partition)
            try:
                windows = Windows.restore(data["windows"], self.specs, **options)
            except WindowConfigError as exc:
                # The window list changed incompatibly: the open windows cannot be kept.
                log.warning("partition %d: saved windows dropped: %s", partition, exc)
                state.evaluation.seq = evaluation.seq  # transitions stay numbered on
            else:
                received = Received.restore(data.get("received", {}))
                state = PartitionState(windows, executions, evaluation, data["offset"], received)
        self.states[partition] = state
        self.stored[partition] = stored_offset
        log.info(
            "partition %d taken over: state at offset %d, raw rows stored to %d",
            partition, state.offset, stored_offset,
        )  # fmt: skip

    def drop(self, partition: int) -> None:
        self.states.pop(partition, None)
        self.dirty.discard(partition)
        self.stored.pop(partition, None)

    def acknowledge(
        self, fingerprint: str, *, started_at: int, by: str, at: int, partitions: Any = None
    ) -> bool:
        """Acknowledge the firing episode ``started_at`` of the alert ``fingerprint``
        wherever one of ``partitions`` (default: every one held) holds it; that partition
        is checkpointed next time. False when none holds it firing in that episode."""
        done = False
        for p in self.states if partitions is None else partitions:
            if self.states[p].evaluation.acknowledge(fingerprint, started_at, by, at):
                self.dirty.add(p)
                done = True
        return done

    def reload(self, rules: RuleSet, *, now_ms: int) -> BatchResult:
        """Evaluate ``rules`` from now on in every partition held (and those taken over
        later); the result carries the transitions of alerts whose rule changed or went
        away (``Evaluation.reload``) and a checkpoint of every partition, so that a
        replay never evaluates the old rules again."""
        self.rules = rules
        out = BatchResult(source=self.source)
        for partition, state in self.states.items():
            out.alerts.extend(state.evaluation.reload(rules, now_ms=now_ms))
            out.touched.add(partition)
        self.dirty |= set(self.states)
        self._checkpoint(out)
        return out

    def owns(self, partition: int) -> bool:
        return partition in self.states

    # -- the hot path ----------------------------------------------------------------
    def process(
        self, messages: list[tuple[Any, ...]], *, now_ms: int, checkpoint: bool = True
    ) -> BatchResult:
        """Process envelopes of partitions already :meth:`load`-ed, in offset order: each
        message ``(partition, offset, value)``, or with a fourth item, the value of its
        :data:`streams.routing.HEADER` header (None: none); with ``checkpoint``, the
        result carries a checkpoint of what changed since the last."""
        out = BatchResult(source=self.source)
        counts = out.counts
        sampling = self.rules.samples
        homes = self.homes
        raw_rows = self.raw_rows
        forwards = Forwards()
        for partition, offset, value, *hop in messages:
            state = self.states[partition]
            want_raw = offset > self.stored[partition]
            want_state = offset > state.offset
            if not (want_raw or want_state):
                counts["replayed_messages"] += 1
                continue
            if want_state and offset != state.offset + 1 and state.offset >= 0:
                # Messages between were never applied to the windows: their events are
                # missing from them (a commit past the state, or a log truncated under it).
                counts["state_gaps"] += 1
                log.warning(
                    "partition %d: offset %d follows state offset %d: %d messages skipped",
                    partition, offset, state.offset, offset - state.offset - 1,
                )  # fmt: skip
            raw = None
            if want_raw:
                raw = out.raw.get(partition)
                if raw is None:
                    raw = out.raw[partition] = RawBatch(partition, offset, offset)
                raw.last = offset
            windows = state.windows
            lines = split(value)
            origin, positions = -1, None
            if hop and hop[0] is not None:
                # Forwarded here by another partition: applied once, and only while this
                # message is new to the state (its raw rows were stored with the state
                # they made, so a message the state already holds has all of them stored).
                if not want_state:
                    continue
                try:
                    origin, positions = read_header(hop[0], len(lines))
                except BadHeader as exc:
                    for index, line in enumerate(lines):
                        out.rejected.append(Rejected(partition, offset, index, line, str(exc)))
                    state.offset = offset
                    out.touched.add(partition)
                    continue
            # The events this message gives this partition, then applied together.
            decoded = None
            if positions is None:
                try:
                    decoded = decode_all(lines, now_ms=now_ms)
                except Exception:  # a decoder bug: read line by line, each is logged there
                    decoded = None
            if decoded is not None:  # every line takes the decoder's fast path
                events, keys = decoded
                indexes: Sequence[int] = range(len(events))
            else:
                events, keys, indexes = self._read(
                    lines, state, partition, offset, origin, positions,
                    want_state=want_state, now_ms=now_ms, out=out,
                )  # fmt: skip
            if homes is not None and positions is None:
                events, keys, indexes = self._at_home(
                    events, keys, indexes, lines, partition, offset,
                    want_state=want_state, forwards=forwards,
                )  # fmt: skip
            late: Iterable[bool] = itertools.repeat(False)  # for the raw rows
            if want_state and events:
                for ev in events:
                    if ev.kind in WORKFLOW_KINDS:
                        state.executions.add(msgspec.structs.asdict(ev))
                flags = windows.add_events(events, keys)
                late = flags
                counts["late"] += sum(flags)
                counts["valid"] += len(events)
                if sampling:
                    for ev, series, came_late in zip(events, keys, flags, strict=True):
                        if ev.value is not None and not came_late:
                            out.alerts.extend(
                                state.evaluation.sample(
                                    series, ev.kind, ev.service, ev.name,
                                    ts=ev.ts, value=ev.value, now_ms=now_ms,
                                )
                            )  # fmt: skip
            if raw is not None and raw_rows is not None:
                raw.rows.extend(zip(events, keys, itertools.repeat(offset), indexes, late))
            if raw is not None and raw_rows is not None and len(raw.rows) >= SEAL_ROWS:
                raw_rows.seal(raw)
            if want_state:
                state.offset = offset
                out.touched.add(partition)
        for partition in sorted(out.touched):
            state = self.states[partition]
            state.windows.arrived(now_ms)
            state.close(now_ms, out)
        self.dirty |= out.touched
        if checkpoint:
            self._checkpoint(out)
        for partition, raw in out.raw.items():
            self.stored[partition] = raw.last
        out.forwards = forwards.envelopes()
        out.rerouted = forwards.counts
        counts["rerouted"] += forwards.counts.total()
        counts["rejected"] += len(out.rejected)
        counts["messages"] += len(messages)
        return out

    def _read(
        self,
        lines: list[bytes],
        state: PartitionState,
        partition: int,
        offset: int,
        origin: int,
        positions: list[Position] | None,
        *,
        want_state: bool,
        now_ms: int,
        out: BatchResult,
    ) -> tuple[list[Any], list[str], list[int]]:
        """The events of ``lines``, line by line: their events, series keys and line
        indexes. A line that is not a valid event is rejected (while the message is new
        to the state), one forwarded again by a replay is counted and left out."""
        counts = out.counts
        events: list[Any] = []
        keys: list[str] = []
        indexes: list[int] = []
        for index, line in enumerate(lines):
            if positions is not None and not state.received.fresh(origin, positions[index]):
                counts["rerouted_repeats"] += 1  # forwarded again by a replay
                continue
            try:
                if len(line) > MAX_EVENT_BYTES:
                    raise InvalidEvent(
                        f"event of {len(line)} bytes is larger than {MAX_EVENT_BYTES}"
                    )
                ev, series = decode(line, now_ms=now_ms)
            except InvalidEvent as exc:
                if want_state:
                    out.rejected.append(Rejected(partition, offset, index, line, exc.reason))
                continue
            except Exception as exc:  # a decoder bug must not stop the partition
                log.exception("event at %d/%d/%d could not be read", partition, offset, index)
                counts["decode_errors"] += 1
                if want_state:
                    reason = f"could not be read ({type(exc).__name__}: {exc})"[:500]
                    out.rejected.append(Rejected(partition, offset, index, line, reason))
                continue
            events.append(ev)
            keys.append(series)
            indexes.append(index)
        return events, keys, indexes

    def _at_home(
        self,
        events: list[Any],
        keys: list[str],
        indexes: Sequence[int],
        lines: list[bytes],
        partition: int,
        offset: int,
        *,
        want_state: bool,
        forwards: Forwards,
    ) -> tuple[list[Any], list[str], Sequence[int]]:
        """The events of series that ``partition`` holds; each other one is forwarded to
        its series' partition (while the message is new to the state), in line order."""
        of = self.homes.of  # type: ignore[union-attr]  # called with homes only
        pairs = zip(events, keys, strict=True)
        homes = [of(series, ev.kind, ev.service, ev.name) for ev, series in pairs]
        if homes.count(partition) == len(homes):  # a producer that keys by series
            return events, keys, indexes
        kept: tuple[list[Any], list[str], list[int]] = ([], [], [])
        for ev, series, index, home in zip(events, keys, indexes, homes, strict=True):
            if home == partition:
                kept[0].append(ev)
                kept[1].append(series)
                kept[2].append(index)
            elif want_state:
                forwards.add(
                    origin=partition, target=home, offset=offset, index=index, line=lines[index]
                )
                self._tell(ev.service, series, partition, home)
        return kept

    def _tell(self, service: str, series: str, arrived: int, home: int) -> None:
        """Say once per service (for the first 1,000) that its events hop: its owner
        can key them and save the hop."""
        if service in self._told or len(self._told) >= 1000:
            return
        self._told.add(service)
        log.warning(
            "service %r publishes events off their series' partition (%s arrived on "
            "partition %d, its own is %d): each is forwarded there once; key messages by "
            "the routing key to save the hop (README: Publishing from another language)",
            service, series, arrived, home,
        )  # fmt: skip

    def tick(
        self, *, now_ms: int, checkpoint: bool = True, backlogged: Collection[int] = ()
    ) -> BatchResult:
        """Advance idle partitions with the wall clock; the windows that this closes
        (and, with ``checkpoint``, a checkpoint of what changed since the last).

        A partition in ``backlogged`` has messages waiting in Kafka: it is slow, not idle,
        and its event time waits for them (else a worker catching up after a restart,
        waiting longer than ``idle_ms`` for a fetch, would close windows early and count
        the rest of their events as late).
        """
        out = BatchResult(source=self.source)
        for partition, state in self.states.items():
            if partition not in backlogged:
                state.windows.tick(now_ms)
            if state.close(now_ms, out):
                out.touched.add(partition)
        self.dirty |= out.touched
        if checkpoint:
            self._checkpoint(out)
        return out

    def checkpoint(self, out: BatchResult | None = None) -> BatchResult:
        """``out`` (default: a new result) with a checkpoint of what changed since the
        last."""
        out = out if out is not None else BatchResult(source=self.source)
        self._checkpoint(out)
        return out

    def _checkpoint(self, out: BatchResult) -> None:
        out.checkpoint = True
        for partition in sorted(self.dirty):
            state = self.states[partition]
            out.states[partition] = (state.offset, state.packed())
        self.dirty.clear()


def parts(items: list[T], max_events: int, newlines: Callable[[T], int]) -> list[list[T]]:
    r"""``items`` (envelopes) in order, cut into runs of at most ``max_events`` events (an
    envelope holds ``newlines(item) + 1`` at most); an envelope larger alone is a run.

    >>> parts([b"a", b"b\nc", b"d", b"e"], 3, lambda v: v.count(b"\n"))
    [[b'a', b'b\nc'], [b'd', b'e']]
    """
    out: list[list[T]] = []
    run: list[T] = []
    events = 0
    for item in items:
        n = newlines(item) + 1
        if run and events + n > max_events:
            out.append(run)
            run, events = [], 0
        run.append(item)
        events += n
    if run:
        out.append(run)
    return out

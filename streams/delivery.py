"""The delivery protocol: what each processed batch becomes, in an order that neither loses
nor doubles anything across a crash at any point.

For each :class:`~streams.records.BatchResult`, in the order the batches were processed:

1. **store**: raw rows, closed windows, detector scores and the alert transitions not
   stored before (``Sink.write``, which returns once ClickHouse acknowledged them);
2. **publish**, every send awaited until the broker has it: rejects to the dead-letter
   topic, events on their way to their series' partition to the events topic, closed
   windows to the windows topic, the transitions not published before to the alerts topic;
   then the transitions go to the webhooks (their own queues, never awaited here);
3. **checkpoint**, when the batch carries one: the partition states it made, with the
   offsets they cover (``Sink.checkpoint``);
4. **acknowledge** every message held since the last checkpoint: the commit point.

A crash between any two steps replays the messages after the last commit into the state
of the last checkpoint, so everything after step 4 of the last checkpointed batch is
made again: raw rows and windows carry deduplication tokens in the store; transitions carry
a per-partition ``seq``, and the highest stored and published per partition (read when the
partition is taken over) keep a replayed transition from being stored or published twice.
Dead letters, forwards and windows on their topics are at least once (a forward's repeat is
recognised by the partition it reaches, :mod:`streams.routing`).

No Kafka and no ClickHouse here: a :class:`Sink` and an
:class:`Outbox` are passed in, and so is the clock (``tests/unit/test_delivery.py`` runs
the protocol on in-memory fakes, one crash at a time).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import itertools
import operator
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from producers.alerts import Alert
from producers.topics import Topics, deadletter_headers
from streams.metrics import Latency
from streams.records import BatchResult, RawRowFormat
from streams.routing import HEADER
from streams.stats import WorkerStats

#: Acknowledges one message held since it was taken from the events topic.
Ack = Callable[[], Awaitable[Any]]

#: Closed windows' lines made at a time for the windows topic, and the envelopes' bytes
#: sent before they are awaited (each send's future holds its envelope until it is
#: awaited). At 100,000 series a part of 100,000 events closed 508,387 windows, whose
#: lines and envelopes (259 MB sent) took the delivery of the part to a peak of 611 MB of
#: Python memory when they were all made first and awaited last; made and awaited as
#: they go, 41 MB (a scratch run with an outbox whose futures hold what they send).
LINES_AT_ONCE = 4096
WINDOWS_IN_FLIGHT = 16 << 20


class Sink(Protocol):
    """Where the worker's output goes; the composition root supplies ClickHouse."""

    #: Inserts acknowledged and retried, by kind (for /metrics).
    counts: collections.Counter[str]
    #: Time from each insert's first try to its acknowledgement.
    latency: Latency
    #: True while the store does not answer (retrying); the last error, for /ready.
    failing: bool
    last_error: str | None
    #: The table an insert is running into right now, if any.
    inserting: str | None

    async def start(self) -> None:
        """Open the store (retrying until it opens)."""
        ...

    def raw_rows(self, source: str) -> RawRowFormat:
        """How this store wants each checked event of ``source`` as a raw row (the
        processor makes them as it decodes)."""
        ...

    async def stored_offsets(self, source: str) -> dict[int, int]:
        """The highest offset stored per partition of ``source``."""
        ...

    async def stored_alerts(self, source: str) -> dict[int, int]:
        """The highest alert transition ``seq`` stored per partition of ``source``."""
        ...

    async def load_states(self, source: str, partitions: set[int]) -> dict[int, bytes]:
        """The newest checkpoint (``BatchResult.states``) of each of ``partitions``."""
        ...

    async def write(self, result: BatchResult, *, alerts: list[Alert] | None = None) -> None:
        """Store raw rows, windows, scores and ``alerts`` (default: the result's);
        returns once acknowledged (retrying meanwhile)."""
        ...

    async def checkpoint(self, result: BatchResult) -> None:
        """Store ``result.states``, after everything else the batch produced."""
        ...


class Outbox(Protocol):
    """The topics the worker writes."""

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[Any]:
        """Hand a message to the producer; the awaitable returned completes once the
        broker has it (acks=all), and raises if it never will."""
        ...


class WriterFailed(RuntimeError):
    """The writer stopped on an error: nothing after the batch it failed on is stored."""


class Delivery:
    """Stores, publishes, checkpoints and acknowledges processed batches in order, on one
    task, while the caller processes the next batch (one batch waits at a time)."""

    def __init__(
        self,
        sink: Sink,
        outbox: Outbox,
        topics: Topics,
        *,
        stats: WorkerStats,
        clock: Callable[[], float],
        silenced: Callable[[Mapping[str, str], int], bool] = lambda labels, at: False,
        dispatch: Callable[[list[Alert], list[bytes]], None] = lambda alerts, lines: None,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        """``clock``: wall-clock seconds; ``silenced(labels, at_ms)``: whether a silence
        covers a transition (it is published flagged, and not sent to webhooks);
        ``dispatch``: hands transitions to the webhooks; ``changed``: called whenever
        what the live pages show may have moved."""
        self.sink = sink
        self.outbox = outbox
        self.topics = topics
        self.stats = stats
        self.clock = clock
        self.silenced = silenced
        self.dispatch = dispatch
        self.changed = changed
        #: Per partition, the highest alert ``seq`` on the alerts topic: a replay after a
        #: crash makes those transitions again, and they are not published twice.
        self.published: dict[int, int] = {}
        #: And the highest stored in ClickHouse (they are stored before they are published).
        self.stored_alerts: dict[int, int] = {}
        self._pending: asyncio.Queue[tuple[BatchResult, Sequence[Ack]]] = asyncio.Queue(1)
        self._held: list[Ack] = []
        self._task: asyncio.Task[None] | None = None

    def take_over(self, partition: int, *, published: int, stored: int) -> None:
        """A partition assigned: the highest ``seq`` on its alerts topic partition and in
        the store."""
        self.published[partition] = published
        self.stored_alerts[partition] = stored

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def error(self) -> BaseException | None:
        """Why the writer stopped, if it failed."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def put(self, result: BatchResult, acks: Sequence[Ack] = ()) -> None:
        """Queue a processed batch and the acknowledgements of the messages it came from;
        waits while the batch before it waits. Raises :class:`WriterFailed` once the
        writer has failed (also while waiting): nothing more can be stored in order."""
        task = self._start()
        putting = asyncio.ensure_future(self._pending.put((result, acks)))
        await asyncio.wait((putting, task), return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()
            raise WriterFailed("the writer stopped") from self.error

    async def drain(self) -> None:
        """Returns once every batch queued so far is finished, or the writer has failed."""
        if self._task is None:
            return
        waiting = asyncio.ensure_future(self._pending.join())
        try:
            await asyncio.wait((waiting, self._task), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()

    async def handover(self, checkpoint: BatchResult) -> None:
        """Everything queued, then ``checkpoint`` (a checkpoint of every changed state),
        finished: before a partition leaves or the worker stops, every message
        acknowledged is covered by a stored checkpoint of the state it made. Raises
        :class:`WriterFailed` if the writer failed on the way."""
        await self.drain()
        await self.put(checkpoint)
        await self.drain()
        if self._task is not None and self._task.done():
            raise WriterFailed("the writer stopped") from self.error

    async def close(self) -> None:
        """Stop the writer; what waits is dropped (replayed from the last commit)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._write())
        elif self._task.done():
            raise WriterFailed("the writer stopped") from self.error
        return self._task

    async def _write(self) -> None:
        while True:
            result, acks = await self._pending.get()
            try:
                await self.finish(result)
                self._held.extend(acks)
                if result.checkpoint:
                    for ack in self._held:
                        await ack()
                    self._held.clear()
            finally:
                self._pending.task_done()

    async def finish(self, result: BatchResult) -> None:
        """Store, publish and checkpoint what one batch (or a tick) produced."""
        if result.alerts:
            result.alerts = self._unpublished(result)
        # A transition stored before a crash, and not published, is published now, not
        # stored again.
        fresh = [a for a in result.alerts if a.seq > self.stored_alerts.get(a.partition, 0)]
        await self.sink.write(result, alerts=fresh)
        for alert in fresh:
            self.stored_alerts[alert.partition] = max(
                self.stored_alerts.get(alert.partition, 0), alert.seq
            )
        sent = [await self._dead_letter(rej) for rej in result.rejected]
        for forward in result.forwards:  # before the checkpoint: a crash sends it again
            sent.append(
                await self.outbox.send(
                    self.topics.events,
                    forward.value,
                    partition=forward.target,
                    headers={HEADER: forward.header},
                )
            )
        in_flight = 0
        for partition, envelope in window_envelopes(result.window_lines()):
            sent.append(await self.outbox.send(self.topics.windows, envelope, partition=partition))
            in_flight += len(envelope)
            if in_flight >= WINDOWS_IN_FLIGHT:  # each send's future holds its envelope
                await asyncio.gather(*sent)
                sent, in_flight = [], 0
        result.release()  # stored and sent
        alert_lines = [a.line() for a in result.alerts]
        for alert, line in zip(result.alerts, alert_lines, strict=True):
            sent.append(
                await self.outbox.send(
                    self.topics.alerts,
                    line,
                    key=alert.fingerprint.encode(),
                    partition=alert.partition,
                )
            )
        await asyncio.gather(*sent)  # delivered (acks=all) before the checkpoint
        for alert in result.alerts:
            self.published[alert.partition] = max(self.published.get(alert.partition, 0), alert.seq)
        self.dispatch(result.alerts, alert_lines)
        await self.sink.checkpoint(result)
        self.stats.add(result, at=self.clock())
        self.changed()

    async def _dead_letter(self, rej: Any) -> Awaitable[Any]:
        return await self.outbox.send(
            self.topics.deadletter,
            rej.line,
            headers=deadletter_headers(
                rej.reason, self.topics.events, rej.partition, rej.offset, rej.index
            ),
        )

    def _unpublished(self, result: BatchResult) -> list[Alert]:
        """The transitions not on the alerts topic yet, flagged when a silence covers them."""
        out = []
        for alert in result.alerts:
            if alert.seq <= self.published.get(alert.partition, 0):
                self.stats.counts["alerts_replayed"] += 1
                continue
            if self.silenced(alert.labels, alert.evaluated_at):
                alert = msgspec.structs.replace(alert, silenced=True)
            out.append(alert)
        self.stats.counts["alerts"] += len(out)
        return out


def window_envelopes(
    windows: Iterable[tuple[int, bytes]],
    max_bytes: int = 512 * 1024,
    *,
    at_once: int = LINES_AT_ONCE,
) -> Iterator[tuple[int, bytes]]:
    """Closed windows as JSON-line envelopes on the partition of their series: each
    envelope the most lines in order that fit in ``max_bytes`` (a longer line alone),
    the same envelopes, in the same order, as ``EnvelopeBuilder`` makes line by line.
    ``windows``: each window's partition and line, in order, read ``at_once`` lines at a
    time as the envelopes are taken (:meth:`BatchResult.window_lines` makes each line
    then), so a batch's lines and envelopes are never all held at once.

    A partition's windows come in runs (the processor closes one partition after the
    other), so each run is cut where the running sum of its lengths passes the limit:
    401 ns a window against 729 through the builder (a scratch timing, best of 7, of
    400,000 windows of 450-650 bytes on 4 partitions).
    """
    #: The last envelope of each partition, still open: its lines.
    pending: dict[int, list[bytes]] = {}
    for partition, run in itertools.groupby(windows, key=_FIRST):
        lines = map(_SECOND, run)
        while piece := list(itertools.islice(lines, at_once)):
            chunk = pending.get(partition, []) + piece
            # ends[i]: the bytes of chunk[:i] joined, plus one.
            ends = [0, *itertools.accumulate(len(line) + 1 for line in chunk)]
            start, cut = 0, False
            while True:
                stop = max(bisect.bisect_right(ends, ends[start] + max_bytes + 1) - 1, start + 1)
                if stop >= len(chunk):
                    break
                yield partition, b"\n".join(chunk[start:stop])
                start, cut = stop, True
            if cut:  # the builder closed it: the rest opens a new envelope, last in order
                pending.pop(partition, None)
            pending[partition] = chunk[start:]
    for partition, held in pending.items():
        yield partition, b"\n".join(held)


_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)

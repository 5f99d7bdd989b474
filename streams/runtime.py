"""What one worker process holds while it runs, and what it does with it, apart from Faust.

:class:`Runtime` owns the processor (made once the topics and the store are set up), the
delivery of processed batches (:mod:`streams.delivery`), the control commands (silences
and acknowledgements), the webhooks and the worker's counters. ``streams.app`` wires it to
Faust (agent, timer, rebalance signals, shutdown); ``streams.web`` serves it. Time comes
from the ``clock`` passed in.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson

from producers.settings import KafkaSettings
from producers.topics import Topics, cluster_id, ensure_topics
from streams import control, retrying, stopping
from streams.channels import Dispatcher
from streams.delivery import Ack, Delivery, Outbox, Sink, WriterFailed
from streams.processing import Processor, parts
from streams.records import BatchResult
from streams.rules import RuleFileError, RuleSet
from streams.settings import WorkerSettings
from streams.stats import WorkerStats
from streams.tails import published_seqs

log = logging.getLogger(__name__)

#: The longest wait, in seconds, between two tries to take a batch's partitions over.
TAKEOVER_BACKOFF_MAX = 5.0

#: The longest wait, in seconds, between two tries to read messages again
#: (:meth:`Runtime.missed`).
REREAD_BACKOFF_MAX = 5.0

#: Reads a partition's messages again, from an offset (or the group's committed offset,
#: when later) up to (not including) another, in parts: each ``(message, ack)``, the
#: message as :meth:`Runtime.process` takes it and the acknowledgement that lets the
#: group commit past it.
Reread = Callable[[int, int, int], AsyncIterator[list[tuple[tuple[Any, ...], Ack]]]]

#: A checkpoint waits at least this many times as long as the last one took to make. A
#: partition's state at 100,000 series is tens of MB (75 MB of JSON seen in
#: ``bench.pipeline``); made every 5 s, it took a growing share of the processor's thread.
CHECKPOINT_PAUSE = 10


def _newlines(item: tuple[tuple[Any, ...], Ack]) -> int:
    """The newlines of a message read again (its events, less one)."""
    return item[0][2].count(b"\n")


def checkpoint_pause(configured: float, took: float) -> float:
    """Seconds between checkpoints: ``VIGIL_CHECKPOINT_SECONDS``, or ``CHECKPOINT_PAUSE``
    times what the last took when that is longer; 0 (a checkpoint every batch, as
    configured) stays 0.

    >>> checkpoint_pause(5.0, 0.01), checkpoint_pause(5.0, 1.5), checkpoint_pause(0.0, 1.5)
    (5.0, 15.0, 0.0)
    """
    return max(configured, CHECKPOINT_PAUSE * took) if configured > 0 else 0.0


class Runtime:
    def __init__(
        self,
        settings: WorkerSettings,
        kafka: KafkaSettings,
        sink: Sink,
        outbox: Outbox,
        *,
        bootstrap: str,
        rules: RuleSet,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
        fail: Callable[[BaseException], Any] = stopping.fail,
        reread: Reread | None = None,
    ) -> None:
        """``fail``: called with what a batch could not be processed for (the default
        exits the process at once: :func:`streams.stopping.fail`); ``reread``: reads
        messages again that the consumer went past (:meth:`missed`; None: none are)."""
        self.settings = settings
        self.kafka = kafka
        self.topics = Topics.for_namespace(kafka.namespace)
        self.options = kafka.kafka_options()
        self.bootstrap = bootstrap
        self.rules = rules
        self.sink = sink
        self.clock = clock
        self.monotonic = monotonic
        self.fail = fail
        self.reread = reread
        #: Partitions taken over that no batch has brought messages of since.
        self.fresh: set[int] = set()
        self.stats = WorkerStats(started=clock())
        self.commands = control.Control()
        self.dispatcher = Dispatcher(rules.channels, external_url=settings.external_url)
        #: One event per open /live stream, set whenever what the dashboard shows may
        #: have changed (a batch processed or stored, a command): each stream clears its own.
        self.watchers: set[asyncio.Event] = set()
        self.delivery = Delivery(
            sink,
            outbox,
            self.topics,
            stats=self.stats,
            clock=clock,
            silenced=self.commands.silenced,
            dispatch=self.dispatcher.dispatch,
            changed=self.changed,
        )
        self.processor: Processor | None = None
        #: Rule reloads done and refused; the reasons of the last refused one; when the
        #: rules running were loaded (ms).
        self.reloads = collections.Counter[str]()
        self.reload_error: list[str] | None = None
        self.loaded_at = self.now_ms()
        self._pending: set[asyncio.Task[None]] = set()
        #: In the consumer group (a first assignment came).
        self.joined = False
        #: The agent and the idle timer both change window state: one at a time.
        self.state_lock = asyncio.Lock()
        self._ready_lock = asyncio.Lock()
        self._checkpointed: float | None = None
        #: How long the last checkpoint took to make (seconds of the processor's thread).
        self._checkpoint_took = 0.0
        self._started: list[Any] = []

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def changed(self) -> None:
        for wake in self.watchers:
            wake.set()

    async def ready(self) -> Processor:
        """The processor, once the topics exist and the store is open (the first call
        sets them up; the others wait for it)."""
        async with self._ready_lock:
            if self.processor is None:
                topics, kafka = self.topics, self.kafka
                partitions = await ensure_topics(
                    self.bootstrap, topics, kafka.events_partitions, self.options
                )
                if partitions != kafka.events_partitions:
                    log.warning(
                        "%s has %d partitions, VIGIL_EVENTS_PARTITIONS says %d: producers "
                        "that route by the setting publish events that hop once more",
                        topics.events, partitions, kafka.events_partitions,
                    )  # fmt: skip
                await self.sink.start()
                self._started.append(self.sink)
                await self.dispatcher.start()
                self._started.append(self.dispatcher)
                source = f"{await cluster_id(self.bootstrap, self.options)}/{topics.events}"
                settings = self.settings
                self.processor = Processor(
                    windows=settings.windows,
                    grace_ms=settings.grace_seconds * 1000,
                    idle_ms=int(settings.idle_seconds * 1000),
                    horizon_ms=int(settings.workflow_horizon_hours * 3600 * 1000),
                    source=source,
                    rules=self.rules,
                    partitions=partitions,
                    raw_rows=self.sink.raw_rows(source),
                )
            return self.processor

    async def close(self) -> None:
        """Stop what was started, in reverse order: the writer, the webhooks, the store."""
        await self.delivery.close()
        while self._started:
            part = self._started.pop()
            try:
                await part.close()
            except Exception as exc:  # stopping goes on: the rest is still closed
                log.warning("closing %s failed: %r", type(part).__name__, exc)

    def checkpoint_due(self) -> bool:
        """Whether a checkpoint is due: ``VIGIL_CHECKPOINT_SECONDS`` have passed since the
        last, and :data:`CHECKPOINT_PAUSE` times as long as the last took to make."""
        now = self.monotonic()
        if self._checkpointed is None:
            self._checkpointed = now
        if now - self._checkpointed < checkpoint_pause(
            self.settings.checkpoint_seconds, self._checkpoint_took
        ):
            return False
        self._checkpointed = now
        return True

    def _checkpoint(self, processor: Processor, result: BatchResult) -> None:
        """Add a checkpoint of what changed to ``result``, and time it."""
        started = self.monotonic()
        processor.checkpoint(result)
        self._checkpoint_took = self.monotonic() - started

    async def take_over(self, processor: Processor, partitions: set[int]) -> None:
        """Load the partitions not held yet: their checkpointed state, the offsets whose
        raw rows are stored, and the highest alert ``seq`` stored and published; alerts
        acknowledged while another worker held them are acknowledged here too."""
        missing = {p for p in partitions if not processor.owns(p)}
        if not missing:
            return
        stored = await self.sink.stored_offsets(processor.source)
        stored_seqs = await self.sink.stored_alerts(processor.source)
        saved = await self.sink.load_states(processor.source, missing)
        published = await published_seqs(
            self.bootstrap, self.topics.alerts, missing, options=self.options
        )
        for p in missing:
            processor.load(p, saved.get(p), stored.get(p, -1))
            self.fresh.add(p)
            self.delivery.take_over(
                p,
                published=published[p],
                stored=stored_seqs.get(p, 0),
            )
            for alert in processor.states[p].evaluation.alerts():
                ack = self.commands.acks.get(alert["fingerprint"])
                if ack is not None:
                    self._acknowledge(processor, alert["fingerprint"], ack, partitions=(p,))

    async def _take_over_until_done(self, processor: Processor, partitions: set[int]) -> None:
        """:meth:`take_over`, again with backoff until it works, while the batch that
        needs it waits. Its messages are taken from the stream: had the error gone up,
        Faust would have restarted the agent, which reads on from the next message, so
        this worker would never see them again and the partition would go on from its
        older state without them ("messages skipped"; their events missing from the
        windows). A store or a broker that does not answer for a moment while partitions
        change hands is what this waits out; an error that does not pass (a checkpoint
        that cannot be read) keeps the batch waiting, a warning each try."""

        def counted(exc: Exception, wait: float) -> None:
            self.stats.counts["takeover_retries"] += 1

        await retrying.until_done(
            lambda: self.take_over(processor, partitions),
            f"taking partitions {sorted(partitions)} over",
            on_error=counted,
            most=TAKEOVER_BACKOFF_MAX,
        )

    async def process(self, messages: list[tuple[Any, ...]], acks: Sequence[Ack]) -> None:
        """Apply messages of partitions this worker holds; queue the result for delivery
        with the acknowledgements of the messages it came from. Anything raised on the
        way but a stopped writer (nothing is stored or committed after it anyway) goes to
        ``fail`` first: a batch given up would be lost (:func:`streams.stopping.fail`)."""
        try:
            await self._process(messages, acks)
        except WriterFailed:
            raise
        except Exception as exc:
            self.fail(exc)
            raise

    async def _process(self, messages: list[tuple[Any, ...]], acks: Sequence[Ack]) -> None:
        # Set up once (the agent awaited it): no lock taken per batch.
        processor = self.processor or await self.ready()
        async with self.state_lock:
            await self._take_over_until_done(processor, {m[0] for m in messages})
            async with contextlib.aclosing(self.missed(processor, messages)) as missed:
                async for earlier, their_acks in missed:
                    await self._deliver(processor, self._apply(processor, earlier), their_acks)
            result = self._apply(processor, messages)
        await self._deliver(processor, result, acks)

    def _apply(self, processor: Processor, messages: list[tuple[Any, ...]]) -> BatchResult:
        """The processor's result for ``messages``, with a checkpoint when one is due."""
        due = self.checkpoint_due()
        result = processor.process(messages, now_ms=self.now_ms(), checkpoint=False)
        if due:
            self._checkpoint(processor, result)
        self.reapply_acks(processor, result)
        return result

    async def _deliver(
        self, processor: Processor, result: BatchResult, acks: Sequence[Ack]
    ) -> None:
        """Queue ``result`` for delivery, with the acknowledgements of its messages."""
        if processor.raw_rows is not None:  # compact while the batch waits for the store
            for raw in result.raw.values():
                processor.raw_rows.seal(raw)
        self.changed()  # the live state moved: the dashboard need not wait for the store
        await self.delivery.put(result, acks)

    async def missed(
        self, processor: Processor, messages: list[tuple[Any, ...]]
    ) -> AsyncIterator[tuple[list[tuple[Any, ...]], list[Ack]]]:
        """Parts of messages (with their acknowledgements), read again (:attr:`reread`),
        that partitions taken over need before the first of their ``messages``: those
        past what a partition's checkpoint holds that its consumer fetched and never
        handed over. The consumer starts a partition at the group's committed offset, and
        Faust's stream drops, unacknowledged, messages it fetched while a rebalance
        stopped its flow or before the rebalance; its consumer does not fetch them again.
        Applied as they came, the partition went on without them ("offset 22 follows
        state offset 2: 19 messages skipped", seen when a worker took over the
        partitions of a killed one). ``reread`` reads from the committed offset when it
        is later than the checkpoint: offsets set past the checkpoint on purpose (a reset
        of the group's offsets) stay skipped, and the processor counts them as a state
        gap, as it does for a stretch the log no longer holds. Only the first batch after
        a take-over is looked at: later jumps in offsets are the log's own (a
        transaction's markers take offsets). A read that fails is tried again, from where
        it stopped, until it works."""
        firsts: dict[int, int] = {}
        for message in messages:
            firsts.setdefault(message[0], message[1])
        fresh, self.fresh = self.fresh & set(firsts), self.fresh - set(firsts)
        if self.reread is None:
            return
        for p in sorted(fresh):
            start = processor.states[p].offset + 1  # stored raw rows reach at least as far
            first = firsts[p]
            if first <= start:
                continue
            log.warning(
                "partition %d: its first message after the take-over is at offset %d, past "
                "its state (at %d): reading again what its consumer skipped past the "
                "group's commit",
                p, first, start - 1,
            )  # fmt: skip
            pauses = retrying.waits(most=REREAD_BACKOFF_MAX)
            while start < first:
                try:
                    async with contextlib.aclosing(self.reread(p, start, first)) as chunks:
                        async for chunk in chunks:
                            self.stats.counts["reread_messages"] += len(chunk)
                            start = chunk[-1][0][1] + 1
                            for part in parts(chunk, self.settings.batch_max_events, _newlines):
                                yield [m for m, _ in part], [a for _, a in part]
                    break
                except Exception as exc:  # the broker does not answer: from where it stopped
                    wait = next(pauses)
                    log.warning(
                        "reading partition %d again from offset %d failed (retrying in "
                        "%.1fs): %s", p, start, wait, retrying.reason(exc),
                    )  # fmt: skip
                    self.stats.counts["reread_retries"] += 1
                    await asyncio.sleep(wait)

    async def reload(self) -> RuleSet:
        """Read the rules file (``VIGIL_RULES``) again and evaluate it from now on; raises
        :class:`streams.rules.RuleFileError` for a file that cannot be used, and the rules
        running keep running. Alerts of rules that did not change keep their state; those
        of changed or removed rules resolve (``Evaluation.reload``)."""
        try:
            rules = self.settings.load_rules()
        except RuleFileError as exc:
            self.reloads["failed"] += 1
            self.reload_error = exc.errors
            raise
        processor = self.processor or await self.ready()
        async with self.state_lock:
            result = processor.reload(rules, now_ms=self.now_ms())
        self.rules = rules
        await self.dispatcher.update(rules.channels)
        self.reloads["done"] += 1
        self.reload_error = None
        self.loaded_at = self.now_ms()
        log.info("rules reloaded from %s: %d rules", rules.path or "the defaults", len(rules.rules))
        await self.delivery.put(result)
        return rules

    async def tick(self, lag: Callable[[], dict[int, int]]) -> None:
        """Partitions assigned and not loaded yet are taken over; windows of partitions
        without traffic close by the wall clock; a checkpoint
        when one is due, also when nothing changed (held messages get acknowledged).

        ``lag()``: per partition, the messages in Kafka past the last one applied, as far
        as the consumer knows; a partition it leaves out (not fetched yet) counts as
        waiting for messages, not idle. It is read once the state is this tick's: a batch
        holding the lock for seconds leaves every partition without an arrival for as
        long, and a backlog read before it had moved on. (Read before the lock, a worker
        at 100,000 series took partitions with messages still to come for idle after
        batches of 8-12 s: ``bench.pipeline``'s log at INFO.)"""
        processor = self.processor
        if processor is None:
            return
        async with self.state_lock:
            try:
                # Partitions assigned without traffic since: loaded now, so that their
                # windows close by the wall clock and the pages show what they hold.
                await self.take_over(processor, self.stats.assigned)
            except Exception as exc:  # the store does not answer: the next tick retries
                log.warning("taking assigned partitions over failed, retrying: %r", exc)
            due = self.checkpoint_due()
            behind = lag()
            waiting = {p for p in processor.states if behind.get(p, 1) > 0}
            result = processor.tick(now_ms=self.now_ms(), checkpoint=False, backlogged=waiting)
            if due:
                self._checkpoint(processor, result)
            self.reapply_acks(processor, result)
        if result.touched or result.checkpoint:
            await self.delivery.put(result)

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions leave. What was processed is stored, and so is the state it made,
        first: whoever holds them next (another worker, or this one again in the same
        rebalance) resumes the state where the processing stopped, whichever offset its
        consumer starts from, and every message acknowledged (so committed) is covered by
        a stored checkpoint. The state lock keeps batches out meanwhile: one processed
        after the checkpoint would be stored, then acknowledged at a later checkpoint
        that no longer holds its state. (Without this, a partition given back to this
        worker resumed an older checkpoint while its consumer went on past it, and the
        messages between were missing from the windows: "offset 57 follows state offset
        54", seen with two workers.)"""
        processor = self.processor
        if self.delivery.running:
            async with self.state_lock:
                if processor is not None:
                    await self.delivery.handover(processor.checkpoint())
                else:
                    await self.delivery.drain()
        partitions = sorted(partitions)
        for p in partitions:
            self.stats.leave(p)
            self.fresh.discard(p)
            if processor is not None:
                processor.drop(p)
        if partitions:
            log.info("partitions %s revoked: what was processed is stored", partitions)

    def assign(self, partitions: Iterable[int]) -> None:
        partitions = set(partitions)
        if partitions:
            log.info("partitions %s assigned", sorted(partitions))
        self.stats.assigned |= partitions
        self.joined = True

    async def final_checkpoint(self) -> bool:
        """On SIGTERM: store what was processed and checkpoint every partition held (none
        counts as idle: stopping closes no window early). False when there was nothing
        to do (no processor, or a writer that never ran or failed)."""
        processor = self.processor
        if processor is None or not self.delivery.running:
            return False
        async with self.state_lock:
            result = processor.tick(
                now_ms=self.now_ms(), checkpoint=True, backlogged=set(processor.states)
            )
        await self.delivery.handover(result)
        return True

    async def command(
        self, body: dict[str, Any], publish: Callable[[bytes], Awaitable[Any]]
    ) -> None:
        """Publish a control command and apply it here at once (read your writes)."""
        await publish(orjson.dumps(body))
        self.apply_command(body)

    def apply_command(self, body: dict[str, Any]) -> None:
        self.commands.apply(body)
        self.changed()
        if body.get("type") == "ack" and self.processor is not None:
            self._acknowledge(self.processor, body["fingerprint"], body)
        if body.get("type") == "reload" and body["at"] > self.loaded_at:
            self.spawn(self.reload_quietly())

    def spawn(self, work: Awaitable[None]) -> None:
        """Run ``work`` on its own task, kept until it is done."""
        self._pending = {t for t in self._pending if not t.done()}
        self._pending.add(asyncio.ensure_future(work))

    async def reload_quietly(self) -> None:
        """:meth:`reload`, logging a refused file instead of raising (SIGHUP, the
        control topic)."""
        try:
            await self.reload()
        except RuleFileError as exc:
            log.error("rules not reloaded, the running ones stay:\n%s", "\n".join(exc.errors))

    def reapply_acks(self, processor: Processor, result: BatchResult) -> None:
        """An alert that fires again in a replay, in the episode someone acknowledged
        before the crash, is acknowledged again."""
        for alert in result.alerts:
            ack = self.commands.acks.get(alert.fingerprint)
            if alert.state == "firing" and ack is not None:
                self._acknowledge(processor, alert.fingerprint, ack, partitions=(alert.partition,))

    @staticmethod
    def _acknowledge(
        processor: Processor, fingerprint: str, ack: dict[str, Any], partitions: Any = None
    ) -> None:
        processor.acknowledge(
            fingerprint,
            started_at=ack["started_at"],
            by=ack["by"],
            at=ack["at"],
            partitions=partitions,
        )

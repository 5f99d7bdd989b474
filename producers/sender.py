"""The one background sender: queued events -> envelopes per partition -> Kafka.

The host only ever calls :meth:`Sender.put`, which appends to a bounded deque (safe from
any thread) or, when the deque and the unacknowledged backlog hold ``queue_max_events``,
drops and counts. Everything else runs in one asyncio task (:meth:`Sender.run`) that

1. connects (topics, then an ``acks="all"`` producer), retrying with backoff while the
   broker is down: events wait in the queue;
2. encodes queued events (adding the global tags) and groups them per
   partition into envelopes (max events, max bytes, linger);
3. sends envelopes without waiting on each acknowledgement; an envelope that fails goes
   back to a retry list and is sent again after a backoff.

Every network wait is bounded by ``send_timeout_ms``; :meth:`flush` and :meth:`close`
return within their timeout whatever the broker does. Events still unsent at close are
counted as ``failed``.

Retried envelopes may arrive after newer ones (as with any Kafka producer that is not
idempotent): windows are event-time based and absorb that within their grace period.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producers.envelopes import HEADERS, EnvelopeBuilder
from producers.events import (
    MAX_EVENT_BYTES,
    WORKFLOW_KINDS,
    InvalidEvent,
    check_tags,
    partition_for,
    routing_key,
    validate,
)
from producers.settings import ProducerSettings
from producers.topics import Topics, ensure_topics

log = logging.getLogger("producers")

#: Events encoded per turn of the sender loop before it yields to the host's loop.
CHUNK = 2_000


class _Metric:
    """Marks a queued metric sample: ``(METRIC, name, tag items, ts, value, ok)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "METRIC"


METRIC = _Metric()
_RETRY_ERRORS = (KafkaError, OSError, TimeoutError)
#: attrs may have non-string keys ({1: "a"}): they become strings, as json.dumps does.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


_CODEC_PACKAGES = {"gzip": "(built in)", "snappy": "cramjam", "lz4": "lz4", "zstd": "zstandard"}


def _codec(name: str) -> str | None:
    """``name`` if aiokafka can compress with it here, else None (no compression)."""
    if name == "none":
        return None
    from aiokafka import codec

    return name if getattr(codec, f"has_{name}")() else None


def _json_default(value: Any) -> str:
    """Whatever orjson cannot encode becomes a short string instead of an error."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{type(value).__name__}: {len(value)}>"
    return f"<{type(value).__name__}>"


class Sender:
    """Owns the queue, the envelopes and the Kafka producer of one client."""

    def __init__(
        self,
        settings: ProducerSettings,
        bootstrap: str,
        *,
        on_invalid: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = Topics.for_namespace(settings.namespace)
        self.queue: collections.deque[Any] = collections.deque()
        self.max_events = settings.queue_max_events
        #: Events taken off the queue and not acknowledged yet (written by the sender only).
        self.backlog = 0
        self.dropped = 0
        self.counts = collections.Counter[str]()
        self.last_error: str | None = None
        self.connected = False
        self._drop_lock = threading.Lock()
        self._on_invalid = on_invalid
        self._clock = clock
        self._tags = settings.global_tags()
        self._builder = EnvelopeBuilder(
            max_events=settings.envelope_max_events, max_bytes=settings.envelope_max_bytes
        )
        self._compression = _codec(settings.compression)
        if settings.compression != "none" and self._compression is None:
            self.last_error = (
                f"VIGIL_KAFKA_COMPRESSION={settings.compression} needs its Python library "
                f"(pip install {_CODEC_PACKAGES[settings.compression]}); sending uncompressed"
            )
            log.error("vigil: %s", self.last_error)
        self._linger = max(settings.linger_ms, 0) / 1000
        self._timeout = settings.send_timeout_ms / 1000
        self._lingering_since: float | None = None
        self._ready: collections.deque[tuple[int, bytes, int]] = collections.deque()
        self._retry: collections.deque[tuple[int, bytes, int]] = collections.deque()
        self._retry_at = 0.0
        self._backoff = 0.1
        self._partitions: dict[tuple[Any, ...], int] = {}
        #: (metric name, tag items) -> (partition, the encoded event up to its ts).
        self._metrics: dict[tuple[Any, ...], tuple[int, bytes]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None

    def forget_after_fork(self) -> None:
        """In a forked child: drop the parent's queue, envelopes, producer and counts.

        The parent sends what it queued; the child starting from them would send it a
        second time, through sockets and a loop that belong to the parent.
        """
        self.queue.clear()
        self.backlog = self.dropped = 0
        self.counts.clear()
        self.connected = False
        self._drop_lock = threading.Lock()  # another thread may have held it at fork time
        self._builder = EnvelopeBuilder(
            max_events=self._builder.max_events, max_bytes=self._builder.max_bytes
        )
        self._lingering_since = None
        self._ready.clear()
        self._retry.clear()
        self._backoff = 0.1
        self._producer = None
        self._flushing = 0
        self._task = None

    # -- any thread ---------------------------------------------------------------
    def put(self, item: Any) -> bool:
        """Queue an event (a dict built by the SDK) or a ``("event"|"line", ...)`` tuple."""
        if len(self.queue) + self.backlog >= self.max_events:
            with self._drop_lock:
                self.dropped += 1
            return False
        self.queue.append(item)
        return True

    @property
    def queued(self) -> int:
        return len(self.queue) + self.backlog

    # -- the sender's loop ----------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="vigil-sender")

    async def run(self) -> None:
        while True:
            try:
                await self._turn()
            except Exception as exc:  # a bug here must not stop delivery for good
                self._note_error(exc)
                self.counts["sender_errors"] += 1
                if self.counts["sender_errors"] == 1:
                    log.exception("vigil: the sender failed; it goes on after a pause")
                await asyncio.sleep(self._next_backoff())

    async def _turn(self) -> None:
        if self._producer is None and not await self._connect():
            await asyncio.sleep(self._next_backoff())
            return
        self._encode(CHUNK)
        now = asyncio.get_running_loop().time()
        if self._builder.pending and (self._flushing or self._linger_over(now)):
            self._close_envelopes()
        await self._send(now)
        if self.queue:
            await asyncio.sleep(0)  # let the host's own tasks run between chunks
        else:
            await asyncio.sleep(self._idle_wait(now))

    def _linger_over(self, now: float) -> bool:
        return self._lingering_since is not None and now - self._lingering_since >= self._linger

    def _idle_wait(self, now: float) -> float:
        if self._flushing:
            return 0.001
        waits = [self._linger if self._linger > 0 else 0.001]
        if self._lingering_since is not None:
            waits.append(self._lingering_since + self._linger - now)
        if self._retry:
            waits.append(self._retry_at - now)
        return min(max(w, 0.0005) for w in waits)

    def _next_backoff(self) -> float:
        delay = self._backoff * random.uniform(0.5, 1.0)  # jitter: producers do not stampede
        self._backoff = min(self._backoff * 2, 5.0)
        return delay

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]

    async def _connect(self) -> bool:
        producer = None
        try:
            async with asyncio.timeout(self._timeout):
                await ensure_topics(
                    self.bootstrap,
                    self.topics,
                    self.settings.events_partitions,
                    self.settings.kafka_options(),
                )
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                compression_type=self._compression,
                linger_ms=0,
                max_batch_size=1024 * 1024,
                max_request_size=8 * 1024 * 1024,
                request_timeout_ms=self.settings.send_timeout_ms,
                **self.settings.kafka_options(),
            )
            async with asyncio.timeout(self._timeout):
                await producer.start()
        except _RETRY_ERRORS as exc:
            self._note_error(exc)
            self.counts["connect_failures"] += 1
            if producer is not None:
                await self._stop_producer(producer)
            return False
        self._producer = producer
        self.connected = True
        self._backoff = 0.1
        return True

    def _encode(self, limit: int) -> None:
        """Move up to ``limit`` events from the queue into envelopes.

        The hot loop of the SDK: a metric sample is its series' cached prefix plus ts,
        value and ok; other SDK-built events (dicts, which carry their service) get the
        global tags, a partition from a cache keyed by series, and are encoded inline;
        published events and raw lines take the slow path.
        """
        queue = self.queue
        n = min(limit, len(queue))
        if not n:
            return
        if not self._builder.pending:
            self._lingering_since = asyncio.get_running_loop().time()
        # Counted before they leave the queue, so `queued` never under-reports.
        self.backlog += n
        popleft, ready, builder = queue.popleft, self._ready, self._builder
        add, buffers, counts = builder.add, builder.buffers, builder.counts
        last, max_bytes = builder.max_events - 1, builder.max_bytes
        partitions, global_tags = self._partitions, self._tags
        dumps, default, options = orjson.dumps, _json_default, _JSON_OPTIONS
        metrics = self._metrics
        for _ in range(n):
            item = popleft()
            try:
                if type(item) is tuple and item[0] is METRIC:  # prefix of its series + ts, value
                    _, name, items, ts, value, ok = item
                    cached = metrics.get((name, items))
                    if cached is None:
                        cached = self._metric_prefix(name, items)
                    partition = cached[0]
                    if ok is None:
                        line = b'%s%d,"value":%r}' % (cached[1], ts, value)
                    else:
                        line = b'%s%d,"value":%r,"ok":%s}' % (
                            cached[1],
                            ts,
                            value,
                            b"true" if ok else b"false",
                        )
                elif type(item) is dict:  # built by the SDK, with this client's service
                    tags = item.get("tags")
                    kind = item["kind"]
                    # Keyed by the event's own tags: the global ones are the same for all.
                    if kind in WORKFLOW_KINDS:
                        key: tuple[Any, ...] = (item["name"],)
                    elif tags:
                        key = (kind, item["name"], item.get("step"), *tags.items())
                    else:
                        key = (kind, item["name"], item.get("step"))
                    if global_tags:
                        item["tags"] = {**global_tags, **tags} if tags else global_tags
                    known = partitions.get(key)
                    partition = self._route(item, key) if known is None else known
                    line = dumps(item, default=default, option=options)
                    if len(line) > MAX_EVENT_BYTES:
                        raise InvalidEvent(
                            f"event is {len(line)} bytes, more than {MAX_EVENT_BYTES}"
                        )
                else:
                    partition, line = self._encode_other(item)
            except InvalidEvent as exc:
                self._rejected(exc.reason)
                continue
            except orjson.JSONEncodeError as exc:
                self._rejected(f"event is not JSON-encodable: {exc}")
                continue
            except TypeError:  # an unhashable tag value
                self._rejected("tags must map names to strings")
                continue
            # Inlined EnvelopeBuilder.add for an envelope that stays below its limits.
            buffer = buffers.get(partition)
            if (
                buffer is not None
                and counts[partition] < last
                and len(buffer) + len(line) < max_bytes
            ):
                buffer += b"\n"
                buffer += line
                counts[partition] += 1
                continue
            closed = add(partition, line)
            if closed is not None:
                ready.append((partition, *closed))

    def _metric_prefix(self, name: str, items: tuple[Any, ...]) -> tuple[int, bytes]:
        """A metric series seen for the first time: its tags are checked, the global tags
        merged, and the event encoded up to ``"ts":``, which every sample appends to."""
        merged = check_tags({**self._tags, **dict(items)})  # global tags count too
        event: dict[str, Any] = {"kind": "metric", "service": self.settings.service, "name": name}
        if merged:
            event["tags"] = merged
        partition = partition_for(routing_key(event), self.settings.events_partitions)
        # A new bytes object: orjson's own result would keep a 4 KiB buffer per series.
        prefix = orjson.dumps(event)[:-1] + b',"ts":'
        if len(self._metrics) >= 100_000:
            self._metrics.clear()
        self._metrics[(name, items)] = cached = (partition, prefix)
        return cached

    def _rejected(self, reason: str) -> None:
        self.backlog -= 1
        self._on_invalid(reason)

    def _route(self, event: dict[str, Any], key: tuple[Any, ...]) -> int:
        """The partition of a series seen for the first time; its tags are checked once."""
        check_tags(event.get("tags"))
        if len(self._partitions) > 100_000:
            self._partitions.clear()
        partition = partition_for(routing_key(event), self.settings.events_partitions)
        self._partitions[key] = partition
        return partition

    def complete(self, event: dict[str, Any]) -> dict[str, Any]:
        """Add the global tags to an SDK-built event, in place, as :meth:`_encode` does."""
        if self._tags:
            tags = event.get("tags")
            event["tags"] = {**self._tags, **tags} if tags else self._tags
        return event

    def _encode_other(self, item: tuple[Any, ...]) -> tuple[int, bytes]:
        if item[0] == "line":  # already encoded, sent as is (tests use it for bad input)
            _, key, line = item
            return partition_for(key, self.settings.events_partitions), line
        event = item[1]
        normalized = validate(event, now_ms=int(self._clock() * 1000))
        line = orjson.dumps(event)
        if len(line) > MAX_EVENT_BYTES:
            raise InvalidEvent(f"event is {len(line)} bytes, more than {MAX_EVENT_BYTES}")
        return partition_for(routing_key(normalized), self.settings.events_partitions), line

    def _close_envelopes(self) -> None:
        self._ready.extend(self._builder.drain())
        self._lingering_since = None

    async def _send(self, now: float) -> None:
        producer = self._producer
        assert producer is not None
        if self._retry and now >= self._retry_at:
            self._ready.extendleft(reversed(self._retry))
            self._retry.clear()
        while self._ready:
            item = self._ready.popleft()
            try:
                async with asyncio.timeout(self._timeout):  # no task per send, unlike wait_for
                    future = await producer.send(
                        self.topics.events, item[1], partition=item[0], headers=HEADERS
                    )
            except _RETRY_ERRORS as exc:
                self._failed(item, exc, producer)
                return
            future.add_done_callback(lambda f, i=item, p=producer: self._acked(f, i, p))

    def _acked(
        self, future: asyncio.Future[Any], item: tuple[int, bytes, int], producer: Any
    ) -> None:
        exc = None if future.cancelled() else future.exception()
        if future.cancelled() or exc is not None:
            self._failed(item, exc or asyncio.CancelledError(), producer)
            return
        self.counts["sent"] += item[2]
        self.counts["envelopes"] += 1
        self.backlog -= item[2]
        self._backoff = 0.1

    def _failed(self, item: tuple[int, bytes, int], exc: BaseException, producer: Any) -> None:
        self._note_error(exc)
        if isinstance(exc, KafkaError) and not exc.retriable:
            # Sending it again cannot help (too large, not authorized): count the loss.
            self.counts["failed"] += item[2]
            self.backlog -= item[2]
            log.error("vigil: %d events refused by Kafka: %s", item[2], self.last_error)
            return
        self.counts["retried"] += item[2]
        self._retry.append(item)
        # Send nothing new before the retries: they go first once the backoff is over.
        self._retry.extend(self._ready)
        self._ready.clear()
        self._retry_at = asyncio.get_running_loop().time() + self._next_backoff()
        if producer is self._producer:
            # Start afresh: a broker that came back may have lost its topics (the
            # embedded one keeps nothing), and a new connection re-creates them.
            self._producer = None
            self.connected = False
            asyncio.get_running_loop().create_task(self._stop_producer(producer))

    async def _stop_producer(
        self, producer: AIOKafkaProducer, timeout: float | None = None
    ) -> None:
        """Stop ``producer`` within ``timeout`` seconds (the connect timeout if None),
        whatever the broker answers."""
        with contextlib.suppress(*_RETRY_ERRORS):
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                await producer.stop()

    # -- flush and close (awaited on the sender's loop) ------------------------------
    async def flush(self, timeout: float) -> bool:
        """Wait until every queued event is acknowledged; False if ``timeout`` ran out."""
        deadline = time.monotonic() + max(timeout, 0.0)
        self._flushing += 1
        try:
            while self.queued:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.002)
            return True
        finally:
            self._flushing -= 1

    async def close(self, timeout: float) -> bool:
        """Flush, then stop the task and the producer; all within ``timeout`` seconds."""
        started = time.monotonic()
        # Leave a little of the budget to stop the Kafka producer.
        flushed = await self.flush(timeout * 0.8)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        unsent = self.queued
        if unsent:
            cause = self.last_error
            self.counts["failed"] += unsent
            self.last_error = f"closed with {unsent} events unsent; last error: {cause}"
            log.warning("vigil: %s", self.last_error)
        producer, self._producer = self._producer, None
        if producer is not None:
            remaining = max(timeout - (time.monotonic() - started), 0.05)
            await self._stop_producer(producer, remaining)
        self.connected = False
        return flushed

    def stats(self) -> dict[str, Any]:
        counts = self.counts
        return {
            "queued": self.queued,
            "sent": counts["sent"],
            "dropped": self.dropped,
            "failed": counts["failed"],
            "retried": counts["retried"],
            "envelopes": counts["envelopes"],
            "connected": self.connected,
            "last_error": self.last_error,
        }

"""The asyncio publisher: ``publish()`` never blocks and never raises into the host.

Events are validated, routed to the partition of their routing key and packed into
envelopes; one background task sends the envelopes with ``acks="all"``. When the buffer
holds ``queue_max_events`` events, new ones are dropped and counted.

Example::

    async with Publisher(settings) as vigil:
        vigil.publish({"kind": "metric", "ts": now_ms, "service": "api",
                       "name": "latency_ms", "value": 12.0})
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producers.envelopes import HEADERS, EnvelopeBuilder
from producers.events import InvalidEvent, partition_for, routing_key, validate
from producers.settings import ProducerSettings
from producers.topics import Topics, ensure_topics

log = logging.getLogger(__name__)


class Publisher:
    def __init__(
        self,
        settings: ProducerSettings,
        *,
        bootstrap: str | None = None,
        strict: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap or settings.kafka_bootstrap
        if not self.bootstrap:
            raise ValueError("no Kafka bootstrap: set VIGIL_KAFKA_BOOTSTRAP or start the broker")
        self.topics = Topics.for_namespace(settings.namespace)
        self.strict = strict
        self._clock = clock
        self._builder = EnvelopeBuilder(
            max_events=settings.envelope_max_events, max_bytes=settings.envelope_max_bytes
        )
        self._ready: collections.deque[tuple[int, bytes, int]] = collections.deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._counts = collections.Counter[str]()
        self._causes_logged: set[str] = set()
        self.last_error: str | None = None

    # -- host-facing, synchronous, never blocking -------------------------------------
    def publish(self, event: dict[str, Any]) -> bool:
        """Queue one event; False when it was invalid or dropped (see :meth:`stats`)."""
        try:
            validate(event, now_ms=int(self._clock() * 1000))
            line = orjson.dumps(event)
        except (InvalidEvent, TypeError) as exc:
            reason = exc.reason if isinstance(exc, InvalidEvent) else f"not JSON-safe: {exc}"
            if self.strict:
                raise InvalidEvent(reason) from None
            self._counts["invalid"] += 1
            if reason not in self._causes_logged and len(self._causes_logged) < 100:
                self._causes_logged.add(reason)
                log.warning("vigil: dropped an invalid event: %s", reason)
            return False
        return self.publish_line(routing_key(event), line)

    def publish_line(self, key: str, line: bytes) -> bool:
        """Queue an already encoded event line routed by ``key`` (no validation)."""
        if self._builder.pending + self._queued_events() >= self.settings.queue_max_events:
            self._counts["dropped"] += 1
            return False
        partition = partition_for(key, self.settings.events_partitions)
        envelope = self._builder.add(partition, line)
        if envelope is not None:
            self._enqueue(partition, envelope)
        self._idle.clear()
        return True

    def stats(self) -> dict[str, Any]:
        return {
            "queued": self._builder.pending + self._queued_events(),
            "sent": self._counts["sent"],
            "dropped": self._counts["dropped"],
            "invalid": self._counts["invalid"],
            "failed": self._counts["failed"],
            "retried": self._counts["retried"],
            "envelopes": self._counts["envelopes"],
            "last_error": self.last_error,
        }

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await ensure_topics(self.bootstrap, self.topics, self.settings.events_partitions)
        compression = None if self.settings.compression == "none" else self.settings.compression
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            compression_type=compression,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=8 * 1024 * 1024,
            request_timeout_ms=30_000,
        )
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="vigil-publisher")

    async def flush(self, timeout: float = 30.0) -> bool:
        """Send everything buffered; True when all of it was acknowledged in time."""
        for partition, envelope in self._builder.drain():
            self._enqueue(partition, envelope)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 30.0) -> None:
        await self.flush(timeout)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), timeout)
            except TimeoutError:
                log.warning("vigil: producer did not stop within %.1fs", timeout)

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the sender task -------------------------------------------------------------
    def _queued_events(self) -> int:
        return self._counts["queued_in_envelopes"]

    def _enqueue(self, partition: int, envelope: bytes) -> None:
        n = envelope.count(b"\n") + 1
        self._ready.append((partition, envelope, n))
        self._counts["queued_in_envelopes"] += n
        self._wake.set()

    async def _run(self) -> None:
        linger = max(self.settings.linger_ms, 1) / 1000
        backoff = 0.1
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), linger)
            except TimeoutError:
                for partition, envelope in self._builder.drain():
                    self._enqueue(partition, envelope)
            self._wake.clear()
            if not self._ready:
                if not self._builder.pending:
                    self._idle.set()
                continue
            batch = list(self._ready)
            self._ready.clear()
            error = await self._send(batch)
            if error is None:
                backoff = 0.1
                continue
            self._counts["retried"] += 1
            self.last_error = f"{type(error).__name__}: {error}"
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            self._wake.set()

    async def _send(self, batch: list[tuple[int, bytes, int]]) -> BaseException | None:
        """Send ``batch``; put back what was not acknowledged and return the first error."""
        assert self._producer is not None
        futures: list[asyncio.Future[Any]] = []
        error: BaseException | None = None
        try:
            for p, env, _ in batch:
                fut = await self._producer.send(
                    self.topics.events, env, partition=p, headers=HEADERS
                )
                futures.append(fut)
        except KafkaError as exc:
            error = exc
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = []
        for i, item in enumerate(batch):
            result = results[i] if i < len(results) else error
            if isinstance(result, BaseException):
                failed.append(item)
                error = error or result
            else:
                self._counts["sent"] += item[2]
                self._counts["envelopes"] += 1
                self._counts["queued_in_envelopes"] -= item[2]
        # Acknowledged envelopes must not be resent; the others go back in order.
        self._ready.extendleft(reversed(failed))
        return error

"""``vigil otlp``: OpenTelemetry in. An OTLP/HTTP receiver and a reader of the topics the
OpenTelemetry Collector's Kafka exporter writes, both publishing Vigil events.

- ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs`` (port 4318, OTLP's): protobuf
  (``application/x-protobuf``) or OTLP/JSON (``application/json``) bodies, gzip or not.
  The events (``producers.otlp`` says how each item maps) go to the events topic through
  the SDK's sender, in envelopes on their series' partition. The answer is OTLP's: 200
  once the broker has every event, with ``partial_success`` counting the items that have
  no Vigil form (they are on the dead-letter topic with the reason); 400 for a body that
  is not OTLP, 415 for another content type, 503 (retry) when the broker does not take
  them within ``VIGIL_OTLP_FLUSH_SECONDS``. The bearer token is the API's
  (``VIGIL_API_TOKEN``; OTel exporters send it with
  ``OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>``).
- ``VIGIL_OTLP_KAFKA_TOPICS`` (e.g. ``otlp_spans,otlp_metrics,otlp_logs``, the
  Collector's defaults): each message (``otlp_proto`` or ``otlp_json`` encoding, told
  apart by its first byte; the signal from the topic's name) is published the same way,
  and its offset committed once the broker has its events: at least once, a crash
  between the two publishes a message's events again. A message that is not OTLP is
  dead-lettered with its topic, partition and offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal as signals
from dataclasses import dataclass
from typing import Any

from producers import otlp
from producers.client import Client
from producers.settings import ProducerSettings, env_field, from_env
from producers.topics import Topics, deadletter_headers, ensure_topics

log = logging.getLogger(__name__)

_CONTENT = {"application/x-protobuf": False, "application/json": True}
_REJECTED_FIELD = {
    "traces": "rejected_spans",
    "metrics": "rejected_data_points",
    "logs": "rejected_log_records",
}


@dataclass(frozen=True)
class OtlpSettings:
    otlp_host: str = env_field("VIGIL_OTLP_HOST", "127.0.0.1")
    otlp_port: int = env_field("VIGIL_OTLP_PORT", 4318, int)
    #: The topics of the Collector's Kafka exporter to read (comma separated; the signal
    #: from each name: ``span``/``trace``, ``metric`` or ``log`` in it). Empty: none.
    otlp_kafka_topics: str = env_field("VIGIL_OTLP_KAFKA_TOPICS", "")
    #: How long a request may wait for the broker to take its events before a 503.
    otlp_flush_seconds: float = env_field("VIGIL_OTLP_FLUSH_SECONDS", 10.0, float)

    def topics(self) -> dict[str, str]:
        """Topic -> signal, for ``VIGIL_OTLP_KAFKA_TOPICS``.

        >>> OtlpSettings(otlp_kafka_topics="otlp_spans, otlp_metrics,otlp_logs").topics()
        {'otlp_spans': 'traces', 'otlp_metrics': 'metrics', 'otlp_logs': 'logs'}
        """
        out = {}
        for topic in (t.strip() for t in self.otlp_kafka_topics.split(",")):
            if topic:
                out[topic] = signal_of(topic)
        return out


def signal_of(topic: str) -> str:
    """The OTLP signal a topic carries, from its name."""
    name = topic.lower()
    found = {s for s, words in otlp.TOPIC_WORDS.items() if any(word in name for word in words)}
    if len(found) != 1:
        raise ValueError(
            f"topic {topic!r}: its name must say its signal (span or trace, metric, log)"
        )
    return found.pop()


class Busy(Exception):
    """The broker did not take the events in time: the sender should retry."""


class Receiver:
    """Decodes OTLP, publishes the events and dead-letters what has no Vigil form."""

    def __init__(self, client: Client, producer: Any, topics: Topics, flush_s: float) -> None:
        self.client = client
        self.producer = producer
        self.topics = topics
        self.flush_s = flush_s
        self.counts: dict[str, int] = {"events": 0, "unmapped": 0, "refused": 0}

    async def accept(
        self,
        signal: str,
        body: bytes,
        *,
        json: bool,
        source: str,
        position: tuple[int, int] | None = None,
    ) -> list[otlp.Unmapped]:
        """Publish ``body``'s events; what has no Vigil form is dead-lettered and
        returned. Raises :class:`producers.otlp.OtlpError` for a body that is not OTLP
        and :class:`Busy` when the broker does not take the events in time."""
        request = otlp.decode(signal, body, json=json)
        done = otlp.translate(signal, request)
        refused = sum(not self.client.publish(event) for event in done.events)
        await self._dead_letters(
            [(u.item, u.reason) for u in done.unmapped], source, position or (None, None)
        )
        self.counts["unmapped"] += len(done.unmapped)
        if refused or not await self.client.flush(self.flush_s):
            self.counts["refused"] += 1
            raise Busy(f"{refused} of {len(done.events)} events not queued, or not sent in time")
        self.counts["events"] += len(done.events)
        return done.unmapped

    async def dead_letter(self, value: bytes, reason: str, source: str, position: Any) -> None:
        await self._dead_letters([(value, reason)], source, position)

    async def _dead_letters(
        self, items: list[tuple[bytes, str]], source: str, position: tuple[Any, Any]
    ) -> None:
        """Send every item at once, then wait for all: one broker round trip, not one
        per item (a request of 500 unmapped points took 500 on the embedded broker)."""
        sent = []
        for i, (value, reason) in enumerate(items):
            headers = deadletter_headers(reason, source, *position, i)
            sent.append(
                await self.producer.send(
                    self.topics.deadletter, value, headers=list(headers.items())
                )
            )
        await asyncio.gather(*sent)


def _response(signal: str, json: bool, unmapped: list[otlp.Unmapped]) -> tuple[bytes, str]:
    """OTLP's success answer, with ``partial_success`` when items were left out."""
    from google.protobuf import json_format

    answer = otlp.response_type(signal)()
    if unmapped:
        partial = answer.partial_success
        setattr(partial, _REJECTED_FIELD[signal], len(unmapped))
        partial.error_message = "; ".join(sorted({u.reason for u in unmapped}))[:1000]
    if json:
        return json_format.MessageToJson(answer).encode(), "application/json"
    return answer.SerializeToString(), "application/x-protobuf"


def web_app(receiver: Receiver, token: str | None) -> Any:
    """The aiohttp application of the OTLP/HTTP receiver."""
    from aiohttp import web

    from streams import auth

    async def export(request: Any) -> Any:
        signal = otlp.PATHS[request.path]
        kind = request.content_type
        if kind not in _CONTENT:
            return web.Response(
                status=415, text=f"content type {kind!r}: send {' or '.join(_CONTENT)}"
            )
        json = _CONTENT[kind]
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding not in ("", "identity", "gzip"):
            return web.Response(status=415, text=f"content encoding {encoding!r}: send gzip")
        body = await request.read()  # aiohttp has undone a gzip Content-Encoding
        try:
            unmapped = await receiver.accept(signal, body, json=json, source=f"otlp{request.path}")
        except otlp.OtlpError as exc:
            return web.Response(status=400, text=str(exc))
        except Busy as exc:
            return web.Response(status=503, text=str(exc), headers={"Retry-After": "1"})
        answer, content_type = _response(signal, json, unmapped)
        return web.Response(body=answer, content_type=content_type)

    async def health(request: Any) -> Any:
        return web.json_response({"status": "ok", **receiver.counts})

    middlewares = [auth.auth_middleware(token)] if token else []
    app = web.Application(middlewares=middlewares, client_max_size=otlp.MAX_BODY_BYTES)
    for path in otlp.PATHS:
        app.router.add_post(path, export)
    app.router.add_get("/health", health)
    return app


async def follow(receiver: Receiver, kafka: ProducerSettings, topics: dict[str, str]) -> None:
    """Read the Collector's topics and publish their events, committing each batch once
    the broker has them (at least once)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka.kafka_bootstrap,
        group_id=f"{kafka.namespace}-otlp",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # A topic the Collector creates after this starts is seen within 5 s.
        metadata_max_age_ms=5_000,
        **kafka.kafka_options(),
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
            for tp, messages in batch.items():
                for m in messages:
                    await _one(receiver, topics[tp.topic], m)
            if batch:
                await consumer.commit()
    finally:
        await consumer.stop()


async def _one(receiver: Receiver, signal: str, m: Any) -> None:
    """Publish one Collector message (again while the broker is slow or away), or
    dead-letter it with its position when it is not OTLP."""
    while True:
        try:
            error = await _accept(receiver, signal, m)
            break
        except Busy as exc:
            log.warning("OTLP message %s:%d waits for the broker: %s", m.topic, m.offset, exc)
            await asyncio.sleep(1.0)
    if error is not None:
        await receiver.dead_letter(m.value, str(error), m.topic, (m.partition, m.offset))


async def _accept(receiver: Receiver, signal: str, m: Any) -> otlp.OtlpError | None:
    """None once ``m`` is published, else why it is not OTLP. otlp_json starts with "{";
    otlp_proto with 0x0a, a newline, and may happen to look like JSON's start: JSON is
    tried first, then protobuf."""
    error = None
    for json in [True, False] if m.value.lstrip()[:1] == b"{" else [False]:
        try:
            position = (m.partition, m.offset)
            await receiver.accept(signal, m.value, json=json, source=m.topic, position=position)
            return None
        except otlp.OtlpError as exc:
            error = exc
    return error


async def serve(
    settings: OtlpSettings,
    kafka: ProducerSettings,
    token: str | None,
    *,
    ready: Any = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the receiver (and the Kafka reader, when topics are set) until ``stop``;
    ``ready(port)`` is called once it listens."""
    from aiohttp import web
    from aiokafka import AIOKafkaProducer

    topics = Topics.for_namespace(kafka.namespace)
    await ensure_topics(
        kafka.kafka_bootstrap, topics, kafka.events_partitions, kafka.kafka_options()
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.kafka_bootstrap, acks="all", **kafka.kafka_options()
    )
    await producer.start()
    stop = stop or asyncio.Event()
    async with Client(kafka) as client:
        receiver = Receiver(client, producer, topics, settings.otlp_flush_seconds)
        runner = web.AppRunner(web_app(receiver, token))
        await runner.setup()
        site = web.TCPSite(runner, settings.otlp_host, settings.otlp_port)
        await site.start()
        port = runner.addresses[0][1]
        reading = (
            asyncio.create_task(follow(receiver, kafka, settings.topics()))
            if settings.otlp_kafka_topics
            else None
        )
        if ready is not None:
            ready(port)
        try:
            await stop.wait()
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
            await runner.cleanup()
            await producer.stop()


def run(port: int | None = None) -> int:
    """``vigil otlp``: until SIGTERM or SIGINT."""
    from pathlib import Path

    from sinks.settings import StoreSettings
    from streams import auth
    from streams.settings import WorkerSettings

    environ = os.environ
    settings = from_env(OtlpSettings, environ)
    if port is not None:
        settings = dataclasses.replace(settings, otlp_port=port)
    kafka = from_env(ProducerSettings, environ)
    if kafka.embedded_kafka:
        print("vigil otlp: set VIGIL_KAFKA_BOOTSTRAP (the broker the workers read)", flush=True)
        return 2
    data_dir: Path = from_env(StoreSettings, environ).data_dir
    token = auth.resolve_token(from_env(WorkerSettings, environ).api_token, data_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signals.SIGTERM, signals.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound: int) -> None:
            print(f"vigil otlp: OTLP/HTTP on http://{settings.otlp_host}:{bound}", flush=True)

        await serve(settings, kafka, token, ready=ready, stop=stop)

    asyncio.run(main())
    return 0

"""The Faust wiring of a worker: configuration, topics, the agent, the idle timer, the
control consumer, rebalance and shutdown signals. What they do is elsewhere:

- :mod:`streams.runtime`: what the worker holds (processor, commands, webhooks, counters)
  and the steps the signals call (take over, process, tick, revoke, final checkpoint);
- :mod:`streams.delivery`: each processed batch stored, published, checkpointed and only
  then acknowledged, in order, on its own task while the agent processes the next batch;
- :mod:`streams.web`: the HTTP pages; :mod:`streams.processing`: the pure core.

One agent (concurrency 1: with more, Faust may commit an offset past a message still in
flight, upstream issues #606 and #707) takes batches of envelopes. Each message is held
with an extra reference until a stored checkpoint covers it (``VIGIL_CHECKPOINT_SECONDS``),
so a crash replays it and the processor skips what the checkpoint already holds. At
100,000 series a checkpoint is megabytes: writing one per batch
(``VIGIL_CHECKPOINT_SECONDS=0``) rewrites that much for every batch.

History queries (``/history/NAME``) are answered by the ``history`` object the process
passes in (``sinks.service.Service``; streams does not import sinks), on its own thread.

Checkpoints live in the store, not in a Faust table: a table's changelog recovery never
finished on the embedded broker after a SIGKILL (it waited for changelog offsets that
never came), and the store already holds the rows the checkpoint must agree with.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from producers.settings import KafkaSettings
from producers.topics import Topics
from streams import auth, rereading, routing, web
from streams.peers import Peers, advertised_url
from streams.processing import parts
from streams.rules import RuleSet
from streams.runtime import Runtime
from streams.settings import WorkerSettings
from streams.stopping import CLOSE_SECONDS

log = logging.getLogger(__name__)


class FaustOutbox:
    """The delivery's :class:`~streams.delivery.Outbox` over Faust topics."""

    def __init__(self, topics: dict[str, faust.types.TopicT]) -> None:
        self.topics = topics

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> Any:
        return await self.topics[topic].send(
            key=key, value=value, partition=partition, headers=headers
        )


def broker_credentials(kafka: KafkaSettings) -> Any:
    """The SDK's connection options as Faust's ``broker_credentials`` (None: PLAINTEXT)."""
    protocol = kafka.kafka_security_protocol
    if protocol == "SSL":
        return faust.SSLCredentials(kafka.ssl_context())
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.kafka_sasl_username,
            password=kafka.kafka_sasl_password,
            mechanism=kafka.kafka_sasl_mechanism,
            ssl_context=kafka.ssl_context() if protocol == "SASL_SSL" else None,
        )
    return None


def create_app(
    settings: WorkerSettings,
    kafka: KafkaSettings,
    sink: Any,
    *,
    bootstrap: str,
    data_dir: Path,
    rules: RuleSet | None = None,
    history: Any = None,
    api_token: str | None = None,
    scheduled: Any = None,
) -> faust.App:
    """The Faust app of one worker; ``sink`` is a :class:`streams.delivery.Sink`;
    ``scheduled`` (``sinks.scheduled.Jobs``) runs on the worker holding partition 0."""
    topics = Topics.for_namespace(kafka.namespace)
    url = advertised_url(settings.web_host, settings.web_port, settings.advertised_url)
    app = faust.App(
        f"{kafka.namespace}-worker",
        broker=f"kafka://{bootstrap}",
        broker_credentials=broker_credentials(kafka),
        store="memory://",
        datadir=str(data_dir / "faust"),
        topic_partitions=kafka.events_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Join the group in ~3 s instead of ~30 s on the embedded broker (a join waits
        # about half the session timeout; recovery after SIGKILL ~15 s instead of ~112 s).
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=6,
        broker_commit_interval=1.0,
        # Messages since the last checkpoint stay unacknowledged on purpose: a stop or a
        # rebalance must not wait for them (they are replayed from the last commit).
        stream_wait_empty=False,
        producer_acks=-1,
        # A dead letter carries its line's original bytes: as large as the largest line
        # an envelope can hold (the broker's own message limit bounds both).
        producer_max_request_size=16 << 20,
        consumer_max_fetch_size=16 << 20,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        # Sent to the group with each join: every member learns every other one's pages.
        canonical_url=url,
        # Every page but /health and /ready needs the bearer token (streams.auth).
        web_application_options=(
            {"middlewares": [auth.auth_middleware(api_token)]} if api_token else None
        ),
    )
    raw = {"value_type": bytes, "value_serializer": "raw"}
    partitioned = {**raw, "partitions": kafka.events_partitions}
    events = app.topic(topics.events, **partitioned)
    alerts = app.topic(topics.alerts, key_type=bytes, key_serializer="raw", **partitioned)
    outbox = FaustOutbox(
        {
            topics.events: events,
            topics.deadletter: app.topic(topics.deadletter, **raw),
            topics.windows: app.topic(topics.windows, **partitioned),
            topics.alerts: alerts,
        }
    )
    control_topic = app.topic(topics.control, **raw)

    async def acknowledge(record: Any) -> None:
        """Lets the group commit past a message read again (it came around the stream)."""
        rereading.acknowledge(app.consumer, record)

    async def reread(partition: int, start: int, end: int) -> AsyncIterator[list[Any]]:
        """The events partition's messages from ``start`` (or the group's committed offset,
        where the consumer started, when later) to ``end`` - 1, read again
        (``Runtime.missed``), with their acknowledgements."""
        async for records in rereading.read_range(
            bootstrap, topics.events, partition, start, end, kafka.kafka_options(),
            group=app.conf.id, most=settings.batch_max_messages,
        ):  # fmt: skip
            yield [
                (
                    routing.message(r.partition, r.offset, r.value, r.headers),
                    functools.partial(acknowledge, r),
                )
                for r in records
            ]

    rt = Runtime(
        settings,
        kafka,
        sink,
        outbox,
        bootstrap=bootstrap,
        rules=rules or RuleSet(),
        clock=time.time,
        monotonic=time.monotonic,
        reread=reread,
    )

    def lag() -> dict[int, int]:
        """Per partition held, the messages in Kafka past the last one applied, as of the
        consumer's latest fetch (a partition not fetched yet is left out)."""
        out: dict[int, int] = {}
        for p, state in (rt.processor.states if rt.processor else {}).items():
            try:
                end = app.consumer.highwater(TP(topics.events, p))
            except Exception:  # no consumer yet, or the partition just left
                continue
            if end is not None:
                out[p] = max(0, end - (state.offset + 1))
        return out

    async def publish_command(body: bytes) -> None:
        await (await control_topic.send(value=body))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        await rt.revoke(tp.partition for tp in revoked if tp.topic == topics.events)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        rt.assign(tp.partition for tp in assigned if tp.topic == topics.events)

    @app.agent(events, concurrency=1)
    async def process(stream: Any) -> None:
        await rt.ready()
        async for batch in stream.take_events(settings.batch_max_messages, settings.batch_seconds):
            if rt.stats.first_batch_at is None:
                rt.stats.first_batch_at = rt.clock()
            for event in batch:
                # Held until stored: take_events' own ack then does not let Faust commit.
                event.message.incref()
            for part in parts(batch, settings.batch_max_events, lambda e: e.value.count(b"\n")):
                # A batch taken before a rebalance can hold messages of partitions that
                # left meanwhile: their new owner applies them; here they are not acked.
                part = [e for e in part if e.message.partition in rt.stats.assigned]
                if not part:
                    continue
                messages = [
                    routing.message(
                        e.message.partition, e.message.offset, e.value, e.message.headers
                    )
                    for e in part
                ]
                await rt.process(messages, [functools.partial(stream.ack, e) for e in part])

    @app.timer(interval=1.0)
    async def close_idle() -> None:
        """Windows of partitions without traffic close by the wall clock."""
        await rt.tick(lag)

    @app.timer(interval=5.0)
    async def scheduled_work() -> None:
        """The daily report and archive, on the worker that holds partition 0, once what
        Kafka held for it (as of the latest fetch) is processed and stored."""
        if scheduled is None or 0 not in rt.stats.assigned:
            return
        behind = lag()
        caught_up = set(behind) >= rt.stats.assigned and not any(behind.values())
        if caught_up:
            await rt.delivery.drain()
        await scheduled.tick(caught_up)

    @app.task
    async def reload_on_sighup() -> None:
        """SIGHUP reads the rules file again (this worker only, as Prometheus does;
        ``POST /-/reload`` asks every worker)."""
        await rt.ready()
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, lambda: rt.spawn(rt.reload_quietly())
        )

    @app.task
    async def follow_control() -> None:
        """Every command on the control topic, from the beginning, as it comes."""
        await rt.ready()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **rt.options
        )
        await consumer.start()
        try:
            tp = TopicPartition(topics.control, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    try:
                        rt.apply_command(orjson.loads(message.value))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        rt.stats.counts["control_rejected"] += 1
                        log.warning("control command at offset %d skipped: %r", message.offset, exc)
        finally:
            await consumer.stop()

    def members() -> dict[str, list[int]]:
        """Each member's URL and the events partitions it holds, as the last rebalance
        handed them to every member (empty before the first)."""
        try:
            spread = app.assignor.external_topics_metadata()
        except AttributeError:  # no assignment yet
            return {}
        return {member: list(held.get(topics.events, ())) for member, held in spread.items()}

    peers = Peers(members, url, token=api_token)
    web.add_pages(app, rt, lag=lag, publish_command=publish_command, peers=peers, history=history)

    @app.on_before_shutdown.connect
    async def flush_on_stop(sender: Any, **kwargs: Any) -> None:
        """SIGTERM (the fetcher has stopped): store what was processed, checkpoint every
        partition changed, ack and commit, within ``shutdown_seconds`` (what is left is
        replayed by the next one); then close what the runtime started."""
        try:
            async with asyncio.timeout(settings.shutdown_seconds):
                if await rt.final_checkpoint():
                    await app.consumer.commit()
                    log.info("stopped cleanly: everything processed is stored and committed")
        except Exception as exc:  # a timeout or a store that does not answer
            log.warning("stopping without a final checkpoint (replayed next time): %r", exc)
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await peers.close()
                await rt.close()
        except Exception as exc:
            log.warning("stopping: not everything closed within %d s: %r", CLOSE_SECONDS, exc)

    return app

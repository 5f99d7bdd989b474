"""The Faust app: a thin shell around :class:`streams.processing.Processor`.

One agent (concurrency 1: with more, Faust may commit an offset past a message still in
flight, upstream issues #606 and #707) takes batches of envelopes and runs the pure
processor. A writer task then handles each processed batch in order, while the agent
processes the next one: the sink stores raw rows and closed windows; rejects go to the
dead-letter topic, closed windows to the windows topic and events that arrived on another
partition than their series' own back to the events topic, on their series' partition
(streams.routing), all awaited until delivered; the
sink stores a checkpoint of each changed partition's state with the offset it covers, every
``VIGIL_CHECKPOINT_SECONDS``; only then are the messages it covers acknowledged (each is
held with an extra reference until that point), so a crash replays them and the processor
skips what the checkpoint already holds. At 100,000 series a checkpoint is megabytes:
writing one per batch (``VIGIL_CHECKPOINT_SECONDS=0``) rewrites that much for every batch.

Alert transitions (streams.evaluation, in the partition state) are stored in the same
batch, then published to the alerts topic on their series' partition, before the
checkpoint; a worker taking over a partition reads the tail of that alerts partition and
publishes only transitions numbered past it, so a replay repeats none. Webhooks get them
from per-receiver queues (streams.channels); silences and acknowledgements come from the
control topic, which every worker reads whole.

History queries (``/history/NAME``) are answered by the ``history`` object the process
passes in (``sinks.history.Service``; streams does not import sinks), on its own thread.

Checkpoints live in the store, not in a Faust table: a table's changelog recovery never
finished on the embedded broker after a SIGKILL (it waited for changelog offsets that
never came), and the store already holds the rows the checkpoint must agree with.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import faust
import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from producers.alerts import Alert, last_published
from producers.envelopes import EnvelopeBuilder
from producers.settings import ProducerSettings
from producers.topics import Topics, cluster_id, ensure_topics
from streams import api, control, ops, routing
from streams.channels import Dispatcher
from streams.processing import BatchResult, Processor, Sink, parts
from streams.rules import RuleSet
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

DASHBOARD = Path(__file__).with_name("dashboard.html")


@functools.cache
def _dashboard() -> str:
    """The dashboard page, read once (on first request, not at start-up)."""
    return DASHBOARD.read_text(encoding="utf-8")


class WorkerStats:
    """Counters the worker serves at ``/stats``."""

    def __init__(self) -> None:
        self.started = time.time()
        self.counts = collections.Counter[str]()
        self.recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        #: Wall-clock times of the first batch received and the last one finished.
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None
        #: Per partition, the highest offset whose output is stored and checkpointed.
        self.applied: dict[int, int] = {}
        #: Event partitions this worker is assigned.
        self.assigned: set[int] = set()
        #: Events forwarded to their series' partition, per partition they arrived on.
        self.rerouted = collections.Counter[int]()

    def add(self, result: BatchResult, *, at: float) -> None:
        self.counts.update(result.counts)
        self.rerouted.update(result.rerouted)
        self.counts["windows_closed"] += len(result.closed)
        self.counts["raw_rows"] += sum(len(r.rows) for r in result.raw.values())
        self.recent.append((at, self.counts["valid"] + self.counts["rejected"]))
        self.last_batch_at = at

    def rate(self) -> float:
        if len(self.recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def create_app(
    settings: WorkerSettings,
    kafka: ProducerSettings,
    sink: Sink,
    *,
    bootstrap: str,
    data_dir: Path,
    rules: RuleSet | None = None,
    history: Any = None,
    api_token: str | None = None,
) -> faust.App:
    rules = rules or RuleSet()
    topics = Topics.for_namespace(kafka.namespace)
    options = kafka.kafka_options()
    app = faust.App(
        f"{kafka.namespace}-worker",
        broker=f"kafka://{bootstrap}",
        broker_credentials=kafka.faust_credentials(),
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
        # Every page but /health and /ready needs the bearer token (streams.ops).
        web_application_options=(
            {"middlewares": [ops.auth_middleware(api_token)]} if api_token else None
        ),
    )
    events = app.topic(
        topics.events, value_type=bytes, value_serializer="raw", partitions=kafka.events_partitions
    )
    deadletter = app.topic(topics.deadletter, value_type=bytes, value_serializer="raw")
    windows_topic = app.topic(
        topics.windows,
        value_type=bytes,
        value_serializer="raw",
        partitions=kafka.events_partitions,
    )
    alerts_topic = app.topic(
        topics.alerts,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=kafka.events_partitions,
    )
    control_topic = app.topic(topics.control, value_type=bytes, value_serializer="raw")
    stats = WorkerStats()
    commands = control.Control()
    dispatcher = Dispatcher(rules.channels)
    #: Per partition, the highest alert ``seq`` on the alerts topic: a replay after a
    #: crash makes those transitions again, and they are not published twice.
    published: dict[int, int] = {}
    #: And the highest stored in ClickHouse (they are stored before they are published).
    stored_alerts: dict[int, int] = {}
    runtime: dict[str, Any] = {}
    ready_lock = asyncio.Lock()
    #: One event per open /live stream, set whenever what the dashboard shows may have
    #: changed (a batch processed or stored, a command): each stream clears its own.
    watchers: set[asyncio.Event] = set()

    def changed() -> None:
        for wake in watchers:
            wake.set()

    # The agent and the idle timer both change window state: one at a time.
    state_lock = asyncio.Lock()

    async def ready() -> Processor:
        async with ready_lock:
            if "processor" not in runtime:
                partitions = await ensure_topics(
                    bootstrap, topics, kafka.events_partitions, options
                )
                if partitions != kafka.events_partitions:
                    log.warning(
                        "%s has %d partitions, VIGIL_EVENTS_PARTITIONS says %d: producers "
                        "that route by the setting publish events that hop once more",
                        topics.events, partitions, kafka.events_partitions,
                    )  # fmt: skip
                await sink.start()
                await dispatcher.start()
                source = f"{await cluster_id(bootstrap, options)}/{topics.events}"
                runtime["processor"] = Processor(
                    windows=settings.windows,
                    grace_ms=settings.grace_seconds * 1000,
                    idle_ms=int(settings.idle_seconds * 1000),
                    horizon_ms=int(settings.workflow_horizon_hours * 3600 * 1000),
                    source=source,
                    rules=rules,
                    partitions=partitions,
                )
            return runtime["processor"]

    async def load_partitions(processor: Processor, partitions: set[int]) -> None:
        missing = {p for p in partitions if not processor.owns(p)}
        if not missing:
            return
        stored = await sink.stored_offsets(processor.source)
        stored_seqs = await sink.stored_alerts(processor.source)
        saved = await sink.load_states(processor.source, missing)
        tails = await last_published(bootstrap, topics.alerts, missing, options=options)
        for p in missing:
            processor.load(p, saved.get(p), stored.get(p, -1))
            published[p] = max((_seq(line, p) for line in tails.get(p, [])), default=0)
            stored_alerts[p] = stored_seqs.get(p, 0)
            for alert in processor.states[p].evaluation.alerts():  # acked while elsewhere
                ack = commands.acks.get(alert["fingerprint"])
                if ack is not None:
                    acknowledge(processor, (p,), alert["fingerprint"], ack)

    # Batches processed and waiting to be stored, in order. One waits while the one before
    # is written: processing the next batch overlaps the store's insert (another thread).
    pending: asyncio.Queue[tuple[BatchResult, list[Any], Any]] = asyncio.Queue(maxsize=1)

    async def store_in_order() -> None:
        """Store each processed batch; at each checkpoint, acknowledge the messages it
        covers (the commit point)."""
        processor = runtime["processor"]
        held: list[tuple[Any, Any]] = []
        while True:
            result, batch, stream = await pending.get()
            try:
                await finish(processor, result)
                held.extend((stream, event) for event in batch)
                if result.checkpoint:
                    for source, event in held:
                        await source.ack(event)  # the hold taken in `process` is released
                    held.clear()
            finally:
                pending.task_done()

    def checkpoint_due() -> bool:
        now = time.monotonic()
        if now - runtime.setdefault("checkpointed", now) < settings.checkpoint_seconds:
            return False
        runtime["checkpointed"] = now
        return True

    def writer() -> asyncio.Task[None]:
        task = runtime.get("writer")
        if task is None:
            task = runtime["writer"] = asyncio.get_running_loop().create_task(store_in_order())
        elif task.done():
            task.result()  # the writer failed: raise its error here, in the agent
        return task

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        processor = runtime.get("processor")
        if runtime.get("writer") is not None and not runtime["writer"].done():
            # What was processed is stored, and so is the state it made, before a partition
            # leaves: whoever holds it next (another worker, or this one again in the same
            # rebalance) resumes the state where the processing stopped, whichever offset
            # its consumer starts from, and every message acknowledged (so committed) is
            # covered by a stored checkpoint. The lock keeps batches out meanwhile: one
            # processed after the checkpoint would be stored, then acknowledged at a later
            # checkpoint that no longer holds its state. Without this, a partition given back
            # to this worker resumed an older checkpoint while its consumer went on past it,
            # and the messages between were missing from the windows (seen with two workers:
            # "offset 57 follows state offset 54").
            async with state_lock:
                await pending.join()
                if processor is not None:
                    await pending.put((processor.checkpoint(), [], None))
                    await pending.join()
        for tp in revoked:
            if tp.topic == topics.events:
                stats.assigned.discard(tp.partition)
                stats.applied.pop(tp.partition, None)
                if processor is not None:
                    processor.drop(tp.partition)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        stats.assigned |= {tp.partition for tp in assigned if tp.topic == topics.events}
        runtime["joined"] = True

    @app.agent(events, concurrency=1)
    async def process(stream: Any) -> None:
        processor = await ready()
        async for batch in stream.take_events(settings.batch_max_messages, settings.batch_seconds):
            if stats.first_batch_at is None:
                stats.first_batch_at = time.time()
            writer()
            for event in batch:
                # Held until stored: take_events' own ack then does not let Faust commit.
                event.message.incref()
            for part in parts(batch, settings.batch_max_events, lambda e: e.value.count(b"\n")):
                async with state_lock:
                    # A batch taken before a rebalance can hold messages of partitions that
                    # left meanwhile: their new owner applies them; here they are not acked.
                    part = [e for e in part if e.message.partition in stats.assigned]
                    messages = [
                        (m.partition, m.offset, e.value, routing.find_header(m.headers))
                        for e in part
                        for m in (e.message,)
                    ]
                    if not messages:
                        continue
                    await load_partitions(processor, {m[0] for m in messages})
                    result = processor.process(
                        messages, now_ms=int(time.time() * 1000), checkpoint=checkpoint_due()
                    )
                    reapply_acks(processor, result)
                changed()  # the live state moved: the dashboard need not wait for the store
                await pending.put((result, part, stream))

    @app.timer(interval=1.0)
    async def close_idle() -> None:
        """Windows of partitions without traffic close by the wall clock."""
        processor = runtime.get("processor")
        if processor is None:
            return
        async with state_lock:
            due = checkpoint_due()  # also when nothing changed: held messages get acked
            waiting = {p for p, n in consumer_lag(processor).items() if n > 0}
            result = processor.tick(
                now_ms=int(time.time() * 1000), checkpoint=due, backlogged=waiting
            )
            reapply_acks(processor, result)
        if result.touched or result.checkpoint:
            writer()
            await pending.put((result, [], None))

    def consumer_lag(processor: Processor) -> dict[int, int]:
        """Per partition held, the messages in Kafka past the last one applied, as of the
        consumer's latest fetch (a partition not fetched yet is left out)."""
        out = {}
        for p, state in processor.states.items():
            try:
                end = app.consumer.highwater(TP(topics.events, p))
            except Exception:  # no consumer yet, or the partition just left
                continue
            if end is not None:
                out[p] = max(0, end - (state.offset + 1))
        return out

    async def finish(processor: Processor, result: BatchResult) -> None:
        """Store, publish and checkpoint what a batch (or a tick) produced."""
        if result.alerts:
            result.alerts = unpublished(result)
        # A transition stored before a crash, and not published, is published now, not
        # stored again.
        fresh = [a for a in result.alerts if a.seq > stored_alerts.get(a.partition, 0)]
        await sink.write(result, alerts=fresh)
        for alert in fresh:
            stored_alerts[alert.partition] = max(stored_alerts.get(alert.partition, 0), alert.seq)
        sent = []
        for rej in result.rejected:
            sent.append(
                await deadletter.send(
                    value=rej.line,
                    headers={
                        "vigil-reason": rej.reason.encode(),
                        "vigil-source-topic": topics.events.encode(),
                        "vigil-source-partition": str(rej.partition).encode(),
                        "vigil-source-offset": str(rej.offset).encode(),
                        "vigil-source-index": str(rej.index).encode(),
                    },
                )
            )
        for forward in result.forwards:  # before the checkpoint: a crash sends it again
            sent.append(
                await events.send(
                    value=forward.value,
                    partition=forward.target,
                    headers={routing.HEADER: forward.header},
                )
            )
        for partition, envelope in window_envelopes(result):
            sent.append(await windows_topic.send(value=envelope, partition=partition))
        alert_lines = [a.line() for a in result.alerts]
        for alert, line in zip(result.alerts, alert_lines, strict=True):
            sent.append(
                await alerts_topic.send(
                    key=alert.fingerprint.encode(), value=line, partition=alert.partition
                )
            )
        await asyncio.gather(*sent)  # delivered (acks=all) before the checkpoint
        for alert in result.alerts:
            published[alert.partition] = max(published.get(alert.partition, 0), alert.seq)
        dispatcher.dispatch(result.alerts, alert_lines)
        await sink.checkpoint(result)
        for p, (offset, _) in result.states.items():
            stats.applied[p] = offset
        stats.add(result, at=time.time())
        changed()

    def unpublished(result: BatchResult) -> list[Any]:
        """The transitions not on the alerts topic yet, flagged when a silence covers them."""
        out = []
        for alert in result.alerts:
            if alert.seq <= published.get(alert.partition, 0):
                stats.counts["alerts_replayed"] += 1
                continue
            if commands.silenced(alert.labels, alert.evaluated_at):
                alert = msgspec.structs.replace(alert, silenced=True)
            out.append(alert)
        stats.counts["alerts"] += len(out)
        return out

    async def command(body: dict[str, Any]) -> None:
        """Publish a control command and apply it here at once (read your writes)."""
        await (await control_topic.send(value=orjson.dumps(body)))
        apply_command(body)

    def apply_command(body: dict[str, Any]) -> None:
        commands.apply(body)
        changed()
        processor = runtime.get("processor")
        if body.get("type") == "ack" and processor is not None:
            acknowledge(processor, list(processor.states), body["fingerprint"], body)

    def reapply_acks(processor: Processor, result: BatchResult) -> None:
        """An alert that fires again in a replay, in the episode someone acknowledged
        before the crash, is acknowledged again."""
        for alert in result.alerts:
            ack = commands.acks.get(alert.fingerprint)
            if alert.state == "firing" and ack is not None:
                acknowledge(processor, (alert.partition,), alert.fingerprint, ack)

    def acknowledge(
        processor: Processor, partitions: Any, fingerprint: str, ack: dict[str, Any]
    ) -> None:
        """Apply an acknowledgement (``started_at``, ``by``, ``at``) to the alert if one of
        ``partitions`` holds it firing in that episode; that partition is checkpointed."""
        for p in partitions:
            evaluation = processor.states[p].evaluation
            if evaluation.acknowledge(fingerprint, ack["started_at"], ack["by"], ack["at"]):
                processor.dirty.add(p)

    @app.task
    async def follow_control() -> None:
        """Every command on the control topic, from the beginning, as it comes."""
        await ready()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, **options
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
                        apply_command(orjson.loads(message.value))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                        stats.counts["control_rejected"] += 1
                        log.warning("control command at offset %d skipped: %r", message.offset, exc)
        finally:
            await consumer.stop()

    def answer(web: Any, build: Any) -> Any:
        try:
            return web.json(build())
        except api.ApiError as exc:
            return web.json({"error": exc.reason}, status=exc.status)

    @app.page("/series/windows")
    async def series_view(web: Any, request: Any) -> Any:
        series = request.query.get("series")
        return answer(web, lambda: api.series_windows(runtime.get("processor"), series))

    @app.page("/series/open")
    async def series_open_view(web: Any, request: Any) -> Any:
        """The dashboard's: a series' open windows, an empty list when it has none."""
        series = request.query.get("series")
        return answer(web, lambda: api.series_open(runtime.get("processor"), series))

    @app.page("/executions/{execution_id}")
    async def execution_view(web: Any, request: Any, execution_id: str) -> Any:
        now_ms = int(time.time() * 1000)
        processor = runtime.get("processor")
        return answer(web, lambda: api.execution(processor, execution_id, now_ms=now_ms))

    @app.page("/workflows/{name}")
    async def workflow_view(web: Any, request: Any, name: str) -> Any:
        return answer(web, lambda: api.workflow(runtime.get("processor"), name))

    def all_alerts() -> list[dict[str, Any]]:
        return api.alerts(runtime.get("processor"))

    def firing() -> int:
        return sum(a["status"] == "firing" for a in all_alerts())

    def open_windows(processor: Processor | None) -> int:
        return sum(s.windows.open_windows for s in processor.states.values()) if processor else 0

    async def request_json(request: Any) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise api.ApiError(400, "the body is not JSON") from None

    @app.page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        now_ms = int(time.time() * 1000)
        listed = [{**a, "silenced": commands.silenced(a["labels"], now_ms)} for a in all_alerts()]
        return web.json({"alerts": listed})

    @app.page("/alerts/{fingerprint}/ack")
    class AckView(faust.web.View):
        async def post(self, request: Any, fingerprint: str) -> Any:
            try:
                found = [a for a in all_alerts() if a["fingerprint"] == fingerprint]
                if not found:
                    raise api.ApiError(404, f"no pending or firing alert {fingerprint!r} here")
                now_ms = int(time.time() * 1000)
                body = await request_json(request)
                try:
                    cmd = control.ack_command(fingerprint, found[0], body, now_ms=now_ms)
                except control.NotFiring as exc:
                    raise api.ApiError(409, str(exc)) from None
                except control.CommandError as exc:
                    raise api.ApiError(400, str(exc)) from None
                await command(cmd)
                return self.json({"acknowledged": fingerprint, "by": cmd["by"]})
            except api.ApiError as exc:
                return self.json({"error": exc.reason}, status=exc.status)

    @app.page("/silences")
    class SilencesView(faust.web.View):
        async def get(self, request: Any) -> Any:
            return self.json({"silences": commands.listing(int(time.time() * 1000))})

        async def post(self, request: Any) -> Any:
            try:
                body = await request_json(request)
                now_ms = int(time.time() * 1000)
                cmd = control.silence_command(body, now_ms=now_ms, silence_id=uuid.uuid4().hex)
            except control.CommandError as exc:
                return self.json({"error": str(exc)}, status=400)
            except api.ApiError as exc:
                return self.json({"error": exc.reason}, status=exc.status)
            await command(cmd)
            return self.json({"id": cmd["id"], "ends_at": cmd["ends_at"]}, status=201)

    @app.page("/silences/{silence_id}")
    class SilenceView(faust.web.View):
        async def delete(self, request: Any, silence_id: str) -> Any:
            if silence_id not in commands.silences:
                return self.json({"error": f"no silence {silence_id!r}"}, status=404)
            await command(control.expire_command(silence_id, now_ms=int(time.time() * 1000)))
            return self.json({"expired": silence_id})

    @app.page("/history/{name}")
    async def history_view(web: Any, request: Any, name: str) -> Any:
        """A history query (``sinks.history``): parameters from the query string."""
        if history is None:
            return web.json({"error": "this worker serves no history queries"}, status=404)
        params = {k: request.query.getone(k) for k in request.query}
        status, body = await history.answer(name, params)
        return web.json(body, status=status)

    def overview_now() -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        return api.overview(
            runtime.get("processor"),
            stats.counts,
            events_per_s=stats.rate(),
            now_ms=now_ms,
            silenced=commands.silenced,
            silences=commands.listing(now_ms),
        )

    @app.page("/workflows/{name}/detail")
    async def workflow_detail_view(web: Any, request: Any, name: str) -> Any:
        now_ms = int(time.time() * 1000)
        processor = runtime.get("processor")
        return answer(web, lambda: api.workflow_detail(processor, name, now_ms=now_ms))

    @app.page("/overview")
    async def overview_view(web: Any, request: Any) -> Any:
        return web.json(overview_now())

    @app.page("/live")
    async def live_view(web: Any, request: Any) -> Any:
        """The overview as server-sent events: pushed when a batch is stored or a command
        applied (at most every 0.25 s), and at least every second (ages, rates)."""
        from aiohttp import web as aioweb

        response = aioweb.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        wake = asyncio.Event()
        watchers.add(wake)
        try:
            while True:
                wake.clear()
                body = orjson.dumps(overview_now())
                await response.write(b"event: overview\ndata: " + body + b"\n\n")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), 1.0)
                await asyncio.sleep(0.25)
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass  # the page went away (or the worker stops)
        finally:
            watchers.discard(wake)
        return response

    @app.page("/dashboard")
    async def dashboard_view(web: Any, request: Any) -> Any:
        """The live dashboard: one page, no build step, nothing fetched from elsewhere."""
        return web.html(_dashboard())

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        """Liveness: the event loop answers and the writer has not died."""
        task = runtime.get("writer")
        if task is not None and task.done() and not task.cancelled() and task.exception():
            reason = f"the writer stopped: {task.exception()!r}"
            return web.json({"status": "failing", "reason": reason}, status=503)
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        """Readiness: topics and store set up, in the consumer group, store answering."""
        waiting = []
        if "processor" not in runtime:
            waiting.append("topics and the store are not set up yet")
        if not runtime.get("joined"):
            waiting.append("not in the consumer group yet")
        if sink.failing:
            waiting.append(f"ClickHouse inserts are failing: {sink.last_error}")
        if waiting:
            return web.json({"status": "waiting", "reasons": waiting}, status=503)
        return web.json({"status": "ready", "partitions": sorted(stats.assigned)})

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        """Vigil's own figures in the Prometheus text format."""
        processor = runtime.get("processor")
        snapshot = ops.Snapshot(
            counts=stats.counts,
            events_per_s=stats.rate(),
            lag=consumer_lag(processor) if processor else {},
            open_windows=open_windows(processor),
            firing=firing(),
            sink_counts=sink.counts,
            sink_latency=sink.latency,
            sink_failing=sink.failing,
            sink_inserting=sink.inserting is not None,
            uptime_s=time.time() - stats.started,
            assigned=len(stats.assigned),
            rerouted=stats.rerouted,
        )
        return web.bytes(ops.metrics_text(snapshot), content_type=ops.CONTENT_TYPE)

    @app.on_before_shutdown.connect
    async def flush_on_stop(sender: Any, **kwargs: Any) -> None:
        """SIGTERM: store what was processed, checkpoint every partition changed, ack and
        commit, within ``shutdown_seconds`` (what is left is replayed by the next one)."""
        processor = runtime.get("processor")
        task = runtime.get("writer")
        if processor is None or task is None or task.done():
            return
        try:
            await asyncio.wait_for(final_checkpoint(processor), settings.shutdown_seconds)
            log.info("stopped cleanly: everything processed is stored and committed")
        except Exception as exc:  # a timeout or a store that does not answer
            log.warning("stopping without a final checkpoint (replayed next time): %r", exc)

    async def final_checkpoint(processor: Processor) -> None:
        async with state_lock:
            # Every partition counts as backlogged: stopping closes no window early.
            result = processor.tick(
                now_ms=int(time.time() * 1000), checkpoint=True, backlogged=set(processor.states)
            )
        await pending.put((result, [], None))
        await pending.join()
        await app.consumer.commit()

    @app.page("/stats")
    async def stats_view(web: Any, request: Any) -> Any:
        processor = runtime.get("processor")
        body = dict(stats.counts)
        body["events_per_s"] = round(stats.rate(), 1)
        body["uptime_s"] = round(time.time() - stats.started, 1)
        body["started_at"] = stats.started
        body["first_batch_at"] = stats.first_batch_at
        body["last_batch_at"] = stats.last_batch_at
        body["partitions"] = sorted(processor.states) if processor else []
        # Per partition, the highest offset whose output is stored and checkpointed.
        body["offsets"] = {str(p): offset for p, offset in stats.applied.items()}
        # Per partition, the highest offset applied to the state in memory (ahead of
        # "offsets" by what waits to be stored).
        states = processor.states.items() if processor else ()
        body["processed"] = {str(p): state.offset for p, state in states}
        body["assigned"] = sorted(stats.assigned)
        body["open_windows"] = open_windows(processor)
        body["channels"] = dispatcher.stats()
        body["firing"] = firing()
        body["published_seq"] = {str(p): seq for p, seq in published.items()}
        # Per partition they arrived on, events forwarded to their series' partition.
        body["rerouted_from"] = {str(p): n for p, n in sorted(stats.rerouted.items())}
        body["inserting"] = sink.inserting  # the table, while one runs
        return web.json(body)

    return app


def _seq(line: bytes, partition: int) -> int:
    try:
        alert = Alert.decode(line)
    except msgspec.DecodeError:
        return 0
    return alert.seq if alert.partition == partition else 0


def window_envelopes(result: BatchResult, max_bytes: int = 512 * 1024) -> list[tuple[int, bytes]]:
    """Closed windows as JSON-line envelopes on the partition of their series."""
    builder = EnvelopeBuilder(max_events=len(result.closed) + 1, max_bytes=max_bytes)
    out = []
    for record, line in zip(result.closed, result.window_lines, strict=True):
        closed = builder.add(record.partition, line)
        if closed is not None:
            out.append((record.partition, closed[0]))
    out.extend((partition, envelope) for partition, envelope, _ in builder.drain())
    return out

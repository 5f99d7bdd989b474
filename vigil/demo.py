"""``vigil demo``: the whole pipeline on embedded parts, fed by a simulated engine.

Simulated time runs 60x faster than the wall clock and ends at "now", so one real
second is one minute of events and a window closes about every second. The two hours
before are published at once first, so the detectors have learned what is usual when
api latency shifts halfway through the run; from 40% to 60% of the run an incident makes
most workflow steps fail, so alerts fire and resolve.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from producers.client import Client
from producers.settings import ProducerSettings
from sinks import catalog
from sinks.queries import ReadOnly
from sinks.store import open_client
from streams import auth
from vigil import webclient
from vigil.config import Config
from vigil.embedded import EmbeddedBroker, free_port, spawn, stop
from vigil.simulation import Simulation

SPEED = 60  # simulated ms per real ms
TICK_S = 0.25
#: Simulated history published at once before the live part, in chunks.
WARMUP_MS = 2 * 3_600_000
HISTORY_CHUNK_MS = 10 * 60_000


def _simulator(config: Config) -> ProducerSettings:
    """The simulator stands for many services: it sends no resource samples of its own."""
    return dataclasses.replace(config.kafka, resource_interval_s=0)


def worker_stats(port: int, token: str | None = None) -> dict[str, Any] | None:
    """The counters a worker serves at /stats, or None while it is not answering."""
    try:
        status, body = webclient.call(f"http://127.0.0.1:{port}/stats", token=token, timeout=1)
    except webclient.Unreachable:
        return None
    if status == 401:
        raise PermissionError(f"the worker at port {port} wants another token: {body}")
    return dict(body) if status == 200 else None


def run(*, duration: float, rate: int, seed: int, linger: float = 0.0) -> int:
    """The demo: an embedded broker (unless VIGIL_KAFKA_BOOTSTRAP names one), a worker, and
    ``duration`` seconds of simulated events at about ``rate`` per second; the worker and
    its dashboard stay up ``linger`` seconds more, then the history summary is printed."""
    config = Config.from_env(os.environ)
    config.store.data_dir.mkdir(parents=True, exist_ok=True)
    broker = None
    bootstrap = config.kafka.kafka_bootstrap
    if config.kafka.embedded_kafka:
        broker = EmbeddedBroker(log_path=config.store.data_dir / "broker.log").start()
        bootstrap = broker.bootstrap
    port = free_port()
    env = dict(os.environ, VIGIL_KAFKA_BOOTSTRAP=bootstrap, VIGIL_WEB_PORT=str(port))
    if not env.get("VIGIL_API_TOKEN"):
        env["VIGIL_API_TOKEN"] = "none"  # a local demo; the worker's default asks a token
    log_path = config.store.data_dir / "worker.log"
    print(
        f"vigil demo: broker {bootstrap}{' (embedded)' if broker else ''}, "
        f"store {config.store.dsn}, worker log {log_path}"
    )
    worker = spawn([sys.executable, "-m", "vigil.cli", "worker"], env=env, log_path=log_path)
    login = "" if env["VIGIL_API_TOKEN"] == "none" else " (once with ?token=<VIGIL_API_TOKEN>)"
    print(f"vigil demo: live dashboard at http://127.0.0.1:{port}/dashboard{login}", flush=True)
    start_ms = int(time.time() * 1000 - duration * 1000 * SPEED)
    token = auth.client_token(env["VIGIL_API_TOKEN"], config.store.data_dir)

    def stats() -> dict[str, Any] | None:
        return worker_stats(port, token)

    progress = Progress(stats)
    run = DemoRun(config, bootstrap, worker, duration, rate, seed, start_ms)
    try:
        asyncio.run(_session(run, progress, linger, fresh=broker is not None))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the worker and the broker")
        return 130
    finally:
        code = stop(worker, timeout=30)
        if broker is not None:
            broker.stop()
    if code != 0:
        print(f"the worker exited with code {code}; see {log_path}")
        return 1
    print_summary(config, since=datetime.fromtimestamp(start_ms / 1000, tz=UTC))
    return 0


class Progress:
    """The demo's live lines: the worker's figures, with the current rate (events the
    worker processed since the line before, per second, not its average since start)."""

    def __init__(self, stats: Callable[[], dict[str, Any] | None]) -> None:
        self.stats = stats
        self.began = time.monotonic()
        self._last: tuple[float, int] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def start(self) -> None:
        """The live part begins: time and rate count from here."""
        self.began = time.monotonic()
        s = self.stats() or {}
        self._last = (self.began, s.get("valid", 0) + s.get("rejected", 0))

    def line(self, published: int) -> dict[str, Any] | None:
        s, now = self.stats(), time.monotonic()
        if s is None:
            print(
                f"[{self.elapsed():5.1f}s] published {published:>8,}  worker starting...",
                flush=True,
            )
            return None
        done = s.get("valid", 0) + s.get("rejected", 0)
        rate = 0.0
        if self._last is not None and now > self._last[0]:
            rate = (done - self._last[1]) / (now - self._last[0])
        self._last = (now, done)
        print(
            f"[{self.elapsed():5.1f}s] published {published:>8,}  processed {s.get('valid', 0):>8,}"
            f"  {rate:>8,.0f} ev/s  windows closed {s.get('windows_closed', 0):>5}"
            f"  open {s.get('open_windows', 0):>4}  late {s.get('late', 0):>4}"
            f"  DLQ {s.get('rejected', 0):>3}",
            flush=True,
        )
        return s


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """What one demo runs: the settings, the broker, the worker process, and the feed's
    duration (s), rate (events/s), seed and simulated start (ms)."""

    config: Config
    bootstrap: str
    worker: Any
    duration: float
    rate: int
    seed: int
    start_ms: int


async def _session(run: DemoRun, progress: Progress, linger: float, *, fresh: bool) -> None:
    """The feed, then the drain and the linger, with each alert transition printed as the
    worker publishes it (from the topic's start on a fresh embedded broker)."""
    worker = run.worker
    follower = asyncio.create_task(_print_alerts(run.config, run.bootstrap, progress, fresh=fresh))
    try:
        published = await _feed(run, progress)
        await _drain(progress, worker, published)
        if linger > 0:
            print(f"vigil demo: the dashboard stays live for {linger:g} s (Ctrl-C ends it)")
            deadline = time.monotonic() + linger
            while time.monotonic() < deadline and worker.poll() is None:
                await asyncio.sleep(0.2)
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await follower


async def _print_alerts(config: Config, bootstrap: str, progress: Progress, *, fresh: bool) -> None:
    """Each transition: when, state, rule, series, value and severity."""
    from producers.alerts import subscribe_alerts

    await asyncio.sleep(2)  # the worker makes the alerts topic as it starts
    try:
        async for a in subscribe_alerts(
            bootstrap, namespace=config.kafka.namespace, from_beginning=fresh,
            include_silenced=True, options=config.kafka.kafka_options(),
        ):  # fmt: skip
            value = "" if a.value is None else f"  value {a.value:,.4g}"
            muted = "  (silenced)" if a.silenced else ""
            print(
                f"[{progress.elapsed():5.1f}s] alert {a.state:<8} {a.rule}  {a.series}{value}"
                f"  {a.severity}{muted}",
                flush=True,
            )
    except Exception as exc:  # the demo goes on without these lines
        print(f"vigil demo: alert transitions not shown: {exc!r}", flush=True)


async def _feed(run: DemoRun, progress: Progress) -> int:
    config, bootstrap, worker = run.config, run.bootstrap, run.worker
    duration, rate, seed, start_ms = run.duration, run.rate, run.seed, run.start_ms
    span_ms = int(duration * 1000 * SPEED)
    # Something to alert on: latency shifts halfway, and from 40% to 60% of the run most
    # workflow steps fail (the default rules on failed executions and success rates fire,
    # then resolve).
    incident = (start_ms + span_ms * 2 // 5, start_ms + span_ms * 3 // 5)
    sim = Simulation(
        seed=seed,
        start_ms=start_ms - WARMUP_MS,
        shift_at_ms=start_ms + span_ms // 2,
        requests_per_s=max(rate / SPEED * 0.9, 1.0),
        incident=incident,
    )
    notes = [
        (start_ms + span_ms // 2, "latency shifts: api requests get slower"),
        (incident[0], "incident: most workflow steps start failing"),
        (incident[1], "incident over: steps succeed again"),
    ]
    notes.sort()
    published = 0
    async with Client(_simulator(config), bootstrap=bootstrap) as pub:
        # The hours before, at once: the detectors learn what is usual before the live
        # part (they score a series after 100 windows).
        for _ in range(WARMUP_MS // HISTORY_CHUNK_MS):
            for event in sim.advance(HISTORY_CHUNK_MS):
                published += pub.publish(event)
            await pub.flush(60)  # the SDK's queue is bounded: one chunk at a time
        print(
            f"vigil demo: published {published:,} events of the {WARMUP_MS // 3_600_000} h "
            "before, so the detectors know what is usual; now live",
            flush=True,
        )
        await asyncio.to_thread(progress.start)
        began = progress.began
        next_line = began + 1
        for tick in range(int(duration / TICK_S)):
            for event in sim.advance(int(TICK_S * 1000 * SPEED)):
                published += pub.publish(event)
            while notes and sim.now_ms >= notes[0][0]:
                print(f"[{progress.elapsed():5.1f}s] {notes.pop(0)[1]}", flush=True)
            if tick % 40 == 7:  # a buggy client: its events must land in the dead-letter topic
                published += pub.publish_line("buggy-client", b'{"kind": "metric", "ts": "now"}')
            if worker.poll() is not None:
                raise SystemExit(f"the worker stopped (code {worker.returncode})")
            await asyncio.sleep(max(0.0, began + (tick + 1) * TICK_S - time.monotonic()))
            if time.monotonic() >= next_line:
                next_line += 1
                await asyncio.to_thread(progress.line, published)
        await pub.flush(30)
    return published


async def _drain(progress: Progress, worker: Any, published: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and worker.poll() is None:
        s = await asyncio.to_thread(progress.stats) or {}
        if s.get("valid", 0) + s.get("rejected", 0) >= published:
            await asyncio.to_thread(progress.line, published)
            return
        await asyncio.sleep(0.3)
    print("warning: the worker had not processed everything when the demo ended")


def print_summary(config: Config, *, since: datetime) -> None:
    now = datetime.now(UTC)
    hours = f"{max((now - since).total_seconds(), 60) / 3600:.3f}h"
    client = open_client(config.store)
    try:
        store = ReadOnly.of(client, config.store)
        flows = catalog.run(store, "workflows", {"hours": hours}, now=now)
        sent = catalog.run(
            store, "metrics", {"since": since.isoformat(), "limit": "10000"}, now=now
        )
        busiest = _busiest(sent)
        latency = None
        if busiest is not None:
            params = {"series": busiest, "since": since.isoformat(), "step": "5m", "agg": "p95"}
            latency = catalog.run(store, "series", params, now=now)
        errors = catalog.run(store, "errors", {"since": since.isoformat(), "limit": "5"}, now=now)
        alerts = catalog.run(store, "alert_stats", {"since": since.isoformat()}, now=now)
    finally:
        client.close()
    print(f"\nHistory since {since:%Y-%m-%d %H:%M} UTC, read back from ClickHouse")
    print("\n  workflows          runs  success   mean s    p50 s    p95 s")
    for f in flows:
        print(
            f"    {f['workflow']:<14}{f['runs']:>6}  {f['success_rate']:>7.0%}"
            f"  {f['mean_ms'] / 1000:>7.1f}  {f['p50_ms'] / 1000:>7.1f}"
            f"  {f['p95_ms'] / 1000:>7.1f}"
        )
    if latency is None:
        print("\n  no metric samples in the period")
    else:
        print(f"\n  {busiest}: p95 per 5 min     count     p95")
        top = max((p["value"] or 0 for p in latency["points"]), default=0) or 1
        for point in latency["points"]:
            bar = "#" * round(30 * (point["value"] or 0) / top)
            t, n, p95 = point["t"][11:16], point["count"], point["value"]
            shown = "" if p95 is None else f"{p95:>8.4g}"
            print(f"    {t}                  {n:>8,}  {shown:>8}  {bar}")
    print("\n  alerts                          fired  resolved  mean to resolve")
    for r in alerts["rules"]:
        took = "" if r["mean_resolve_s"] is None else f"{r['mean_resolve_s'] / 60:.1f} min"
        print(f"    {r['rule']:<30}{r['fired']:>6}  {r['resolved']:>8}  {took:>15}")
    if not alerts["rules"]:
        print("    none")
    print("\n  top errors")
    for e in errors["types"]:
        print(f"    {e['count']:>6}  {e['service']}/{e['type']}")
    rate = errors["recovery_success_rate"]
    if rate is not None:
        print(f"  recoveries: {errors['recovery_attempts']} attempts, {rate:.0%} succeeded")
    where = f"VIGIL_DATA_DIR={config.store.data_dir} " if config.store.embedded else ""
    print(
        f"\nMore: {where}vigil history workflows|steps|errors|alert_stats|metrics|logs ..."
        " (--help lists them)"
    )


def _busiest(sent: list[dict[str, Any]]) -> str | None:
    """The series to chart: the latency series with the most samples, else the metric
    series with the most (None when there is none)."""
    if not sent:
        return None
    latency = [m for m in sent if "latency" in m["metric"]]
    return str(max(latency or sent, key=lambda m: (m["samples"], m["series"]))["series"])


def print_summary_from_env(*, since_hours: float) -> int:
    config = Config.from_env(os.environ)
    since = datetime.fromtimestamp(time.time() - since_hours * 3600, tz=UTC)
    print_summary(config, since=since)
    return 0


def simulate(*, rate: int, duration: float, seed: int) -> int:
    """Publish simulated events in real time (event time = wall clock) to the configured Kafka."""
    config = Config.from_env(os.environ)
    if config.kafka.embedded_kafka:
        print("vigil simulate needs VIGIL_KAFKA_BOOTSTRAP (or use `vigil demo`)", file=sys.stderr)
        return 2

    stats: dict[str, Any] = {}

    async def feed() -> None:
        sim = Simulation(
            seed=seed, start_ms=int(time.time() * 1000), requests_per_s=max(rate * 0.9, 1.0)
        )
        pub = Client(_simulator(config))
        try:
            async with pub:  # closing flushes what is queued
                began = time.monotonic()
                tick = 0
                while duration <= 0 or time.monotonic() - began < duration:
                    for event in sim.advance(int(TICK_S * 1000)):
                        pub.publish(event)
                    tick += 1
                    await asyncio.sleep(max(0.0, began + tick * TICK_S - time.monotonic()))
                    if tick % int(10 / TICK_S) == 0:
                        print(f"vigil simulate: {pub.stats()}", flush=True)
        finally:
            stats.update(pub.stats())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(feed())
    print(
        f"vigil simulate: sent {stats.get('sent', 0)} events, dropped {stats.get('dropped', 0)}",
        flush=True,
    )
    return 0 if not stats.get("dropped") else 1

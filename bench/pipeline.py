"""End-to-end throughput: producer -> Kafka -> worker -> ClickHouse, against a baseline.

1. publish N events through ``producers.Client`` (a backlog on the topic): metric
   samples spread over ``--series`` distinct series across ten minutes of event time,
   plus one simulated workflow engine's events (every tenth event) for live tracking;
2. baseline: a bare aiokafka consumer reads the same topic and orjson-decodes every event;
3. a ``vigil worker`` drains the backlog into chDB; the clock runs from its first processed
   batch to the last (its start-up time is reported apart).

Both rates come from the same run on the same data, so their ratio is meaningful on a
noisy machine. So does where the CPU went, in µs per event: the bare consumer's process
and the broker while it reads; then the worker's threads by name while it drains (``main``
runs the processor, ``ThreadPool`` and ``MergeMutate`` are chDB's inserts and merges, the
store's own thread calls chDB), and the broker's. A total above the cores times the µs
between events means the machine, not one thread, is the limit. Prints JSON, then a
table.

With ``--store chserver`` the store runs behind ``vigil chserver``, in a process of its
own as a ClickHouse server would be, so the worker's peak RSS is its own (the store's is
printed apart): embedded, chDB's memory is most of the worker's. With ``--workers N``
(N > 1) it runs twice in one go, each time on a backlog and a store of
its own behind ``vigil chserver`` (how several processes share chDB): one worker, then N
workers in one consumer group, and prints the N workers' events/s and their scaling
against the one (the clock runs from the first batch any worker received to the last any
stored, rebalances included). Everything runs on this machine: with 2 cores, the broker,
``vigil chserver`` and the workers share them.

With ``--peers`` it then runs Quix Streams (``bench.peer_quix``) on the same broker and
events, published one JSON message each and keyed by series: its loop doing nothing, and a
60 s tumbling count and mean per series; it prints their events/s and Vigil's against them.

It prints how many events the store flagged late and how many windows it holds: a late
event is stored but never put in a window, so a run whose events came late measures a
worker that did less (the events are made so that none is late). Windows ``1m,5m,5m/1m``
with sketches, and live execution tracking, are on. Run it for
1,000 and for 100,000 series:

    python -m bench.pipeline --events 1000000 --series 1000
    python -m bench.pipeline --events 1000000 --series 100000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import heapq
import operator
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.report import emit, progress
from producers.client import Client
from producers.envelopes import split
from producers.events import series_key
from producers.settings import ProducerSettings
from producers.topics import Topics
from sinks.settings import StoreSettings
from sinks.store import open_client
from vigil.demo import worker_stats
from vigil.embedded import EmbeddedBroker, EmbeddedClickHouse, free_ports, spawn, stop
from vigil.simulation import Simulation

SPAN_MS = 10 * 60_000


def make_events(n: int, series: int) -> list[dict]:
    """``n`` events in time order over ten minutes: metric samples over ``series``
    series, and a tenth of them workflow events of a simulated engine, in time with the
    metrics, so no event is late. (Cycled through ten times over, the workflow events
    ran ahead of the metrics and made 85-90% of all events late, which skipped their
    windows; picked by position instead of merged by time, they led by 30 s or more
    depending on the minute the run started, and made up to 38,000 of 300,000 late.)"""
    start = int(time.time() * 1000) - 6 * 3600_000
    sim = Simulation(seed=1, start_ms=start, requests_per_s=1)
    workflow = sorted(
        (e for e in sim.advance(SPAN_MS) if e["kind"] != "metric"), key=operator.itemgetter("ts")
    )
    picked = n // 10 if workflow else 0
    workflow = [workflow[j * len(workflow) // picked] for j in range(picked)]
    rng = random.Random(1)
    metrics = n - picked
    events = [
        {
            "kind": "metric",
            "ts": start + i * SPAN_MS // metrics,
            "service": "api",
            "name": "latency_ms",
            "value": rng.lognormvariate(3, 1),
            "ok": rng.random() > 0.02,
            "tags": {"host": f"h{i % series}"},
        }
        for i in range(metrics)
    ]
    return list(heapq.merge(events, workflow, key=operator.itemgetter("ts")))


async def publish(settings: ProducerSettings, events: list[dict]) -> dict[str, float]:
    n = len(events)
    async with Client(settings) as pub:
        started = time.perf_counter()
        for i, event in enumerate(events):
            while not pub.publish(event):  # the buffer is full: let the sender drain it
                await asyncio.sleep(0.005)
            if i % 20_000 == 0:
                progress("publish", i, n, started)
                await asyncio.sleep(0)
        await pub.flush(120)
        elapsed = time.perf_counter() - started
        stats = pub.stats()
    print(file=sys.stderr)
    assert stats["sent"] == n, stats
    return {"seconds": elapsed, "events_per_s": n / elapsed, "envelopes": stats["envelopes"]}


async def baseline(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                for record in records:
                    for line in split(record.value):
                        orjson.loads(line)
                        seen += 1
            progress("baseline", seen, n, started)
    finally:
        await consumer.stop()
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    return {"seconds": elapsed, "events_per_s": n / elapsed}


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> collections.Counter[str]:
    """CPU seconds (user and system) each thread of process ``pid`` has used, summed by
    thread name (the process's main thread is ``main``); empty once it has gone."""
    out = collections.Counter[str]()
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
        out["main" if task.name == str(pid) else _thread_group(name)] += used
    return out


def _thread_group(name: str) -> str:
    """A thread's name without its number (``QueryPipelineEx``, ``vigil-clickhouse``)."""
    return re.sub(r"[-_]?\d+$", "", name.strip()) or name


def _cpu(procs: list[Any], others: dict[str, int]) -> collections.Counter[str]:
    """CPU seconds so far: the workers' per thread group (``worker main``, ``worker
    QueryPipelineEx``...), the ``others`` processes' in all."""
    out = collections.Counter[str]()
    for proc in procs:
        for group, used in cpu_seconds(proc.pid).items():
            out[f"worker {group}"] += used
    for name, pid in others.items():
        out[name] = sum(cpu_seconds(pid).values())
    return out


def peak_rss(pid: int) -> float:
    """The peak resident memory of process ``pid`` so far, in MB (0 once it is gone)."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_workers(
    env: dict[str, str], n: int, workdir: Path, count: int, others: dict[str, int]
) -> dict[str, Any]:
    """``count`` workers drain the backlog of ``n`` events together; the clock runs from
    the first batch any of them received to the last batch any of them stored. The CPU
    the workers (per thread group) and the ``others`` processes (name -> pid: the broker,
    a chserver) used meanwhile is counted from the first poll that saw a batch."""
    ports = free_ports(count)
    token = secrets.token_urlsafe(16)
    spawned = time.time()
    procs = [
        spawn(
            [sys.executable, "-m", "vigil.cli", "worker"],
            env={
                **env,
                "VIGIL_WEB_PORT": str(port),
                "VIGIL_API_TOKEN": token,
                "VIGIL_DATA_DIR": str(workdir / f"worker{i}"),
            },
            log_path=workdir / f"worker{i}.log",
        )
        for i, port in enumerate(ports)
    ]
    cpu_from: collections.Counter[str] | None = None
    began = time.perf_counter()
    stats: list[dict[str, Any]] = [{} for _ in ports]
    label = "worker (incl. start-up)" if count == 1 else f"{count} workers (incl. start-up)"
    try:
        while True:
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    raise SystemExit(f"worker {i} exited with {proc.returncode}; see {workdir}")
            # A worker busy with a long batch may not answer within the poll's second
            # (at 100,000 series a batch holds its event loop for seconds): its last
            # answer stands, instead of the progress falling back to 0.
            answers = (worker_stats(port, token) for port in ports)
            stats = [now or last for now, last in zip(answers, stats, strict=True)]
            valid = sum(s.get("valid", 0) for s in stats)
            progress(label, valid, n, began)
            if cpu_from is None and any("first_batch_at" in s for s in stats):
                cpu_from = _cpu(procs, others)
            if valid >= n:
                break
            time.sleep(0.2 if cpu_from is not None else 0.02)
        cpu = _cpu(procs, others)
        cpu.subtract(cpu_from or {})
        peak_rss_mb = sum(peak_rss(proc.pid) for proc in procs)
    finally:
        codes = [stop(proc, timeout=60) for proc in procs]
    print(file=sys.stderr)
    assert codes == [0] * count, f"worker exit codes {codes}"
    # The workers' own clocks: from the first batch received to the last batch stored.
    busy = [s for s in stats if "first_batch_at" in s]
    first = min(s["first_batch_at"] for s in busy)
    last = max(s["last_batch_at"] for s in busy)
    return {
        "ready_seconds": first - spawned,
        "seconds": last - first,
        "events_per_s": n / max(last - first, 1e-9),
        "peak_rss_mb": peak_rss_mb,
        "rerouted": sum(sum(s.get("rerouted_from", {}).values()) for s in stats),
        "events_per_worker": [s.get("valid", 0) for s in stats],
        "cpu_seconds": cpu,
    }


def drain(
    bootstrap: str,
    events: list[dict],
    workdir: Path,
    count: int,
    dsn: str,
    *,
    bare: bool,
    others: dict[str, int],
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Publish ``events`` under a namespace of their own, read them with the bare
    consumer when ``bare``, then drain them with ``count`` workers into the store at
    ``dsn`` (chDB in the first worker's data directory when empty): (publish and
    baseline, workers) figures and the raw rows stored."""
    n = len(events)
    namespace = f"bench{os.getpid()}w{count}"
    settings = ProducerSettings(
        kafka_bootstrap=bootstrap,
        namespace=namespace,
        queue_max_events=200_000,
        resource_interval_s=0,
        capture_runtime=False,
    )
    produced = asyncio.run(publish(settings, events))
    topic = Topics.for_namespace(namespace).events
    if bare:
        before, used = _cpu([], others), time.process_time()
        produced["baseline"] = asyncio.run(baseline(bootstrap, topic, n))["events_per_s"]
        cpu = _cpu([], others)
        cpu.subtract(before)
        cpu["consumer"] = time.process_time() - used
        produced["baseline_cpu_seconds"] = cpu
    env = dict(
        os.environ,
        VIGIL_KAFKA_BOOTSTRAP=bootstrap,
        VIGIL_NAMESPACE=namespace,
        VIGIL_WINDOWS="1m,5m,5m/1m",
        VIGIL_CLICKHOUSE_DSN=dsn,
    )
    worker = run_workers(env, n, workdir, count, others)
    store = StoreSettings(data_dir=workdir / "worker0", clickhouse_dsn=dsn)
    client = open_client(store)
    db = store.database
    try:
        counts = client.query(f"SELECT count(), countIf(late) FROM {db}.events")
        stored, late = counts.result_rows[0]
        windows = client.query(f"SELECT count() FROM {db}.windows").result_rows[0][0]
    finally:
        client.close()
    if stored != n:
        raise SystemExit(f"stored {stored} rows for {n} events")
    if late:  # make_events keeps every event inside the grace: late ones are not measured
        print(f"bench.pipeline: {late:,} of {n:,} events came late", file=sys.stderr)
    worker["late_events"], worker["windows_stored"] = int(late), int(windows)
    return produced, worker, int(stored)


async def publish_plain(bootstrap: str, topic: str, events: list[dict], partitions: int) -> None:
    """``events`` as most Kafka clients publish them, for a peer: one JSON message each,
    keyed by its series, on a topic of ``partitions`` of its own."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks="all"
    )
    await producer.start()
    started = time.perf_counter()
    try:
        sent = []
        for i, event in enumerate(events, 1):
            key = series_key(event).encode()
            sent.append(await producer.send(topic, orjson.dumps(event), key=key))
            if len(sent) == 20_000 or i == len(events):
                await asyncio.gather(*sent)
                sent.clear()
                progress("publish for the peer", i, len(events), started)
    finally:
        await producer.stop()
    print(file=sys.stderr)


def run_peer(bootstrap: str, events: list[dict], python: str) -> dict[str, dict[str, Any]]:
    """Quix Streams (``bench.peer_quix``, run by ``python``) on the same broker: its loop
    doing nothing, then its 60 s tumbling count and mean per series, over ``events``
    published one a message."""
    topic = f"bench{os.getpid()}-peer-events"
    partitions = ProducerSettings().events_partitions  # as many as Vigil's events topic
    asyncio.run(publish_plain(bootstrap, topic, events, partitions))
    out = {}
    for mode in ("raw", "window"):
        print(f"  Quix Streams ({mode}) ...", file=sys.stderr)
        done = subprocess.run(
            [python, "-m", "bench.peer_quix", bootstrap, topic, str(len(events)), mode],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise SystemExit(f"bench.peer_quix {mode} failed:\n{done.stderr[-3000:]}")
        out[mode] = orjson.loads(done.stdout.strip().splitlines()[-1])
        if out[mode]["events"] != len(events):
            raise SystemExit(f"Quix Streams ({mode}) saw {out[mode]['events']} events")
    return out


def _per_event(cpu: collections.Counter[str], n: int) -> dict[str, float]:
    """CPU µs per event of each entry of at least 0.05 µs, the rest as ``other``, and the
    total (busy cores = total / µs between events)."""
    per = {k: v * 1e6 / n for k, v in cpu.most_common()}
    out = {k: round(v, 2) for k, v in per.items() if v >= 0.05}
    rest = sum(v for k, v in per.items() if k not in out)
    if rest:
        out["other"] = round(rest, 2)
    out["total"] = round(sum(per.values()), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=1_000, help="distinct metric series")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N > 1: one worker, then N, each on a store of its own behind vigil chserver",
    )
    parser.add_argument(
        "--store",
        choices=("chdb", "chserver"),
        default="chdb",
        help="chserver: the store in a process of its own (as a ClickHouse server is), so "
        "the worker's memory is its own; always so with --workers N",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also Quix Streams on the same broker and events (pip install -e '.[peers]')",
    )
    parser.add_argument(
        "--quix-python",
        default=sys.executable,
        help="the Python that has quixstreams (default: this one)",
    )
    args = parser.parse_args()
    n = args.events
    events = make_events(n, args.series)
    json_bytes = sum(len(orjson.dumps(e)) for e in events) / n
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    external = os.environ.get("VIGIL_KAFKA_BOOTSTRAP", "")
    broker = None if external else EmbeddedBroker(log_path=workdir / "broker.log").start()
    bootstrap = external or broker.bootstrap  # type: ignore[union-attr]
    runs = [1] if args.workers == 1 else [1, args.workers]
    figures = {}
    try:
        for count in runs:
            root = workdir / f"run{count}"
            root.mkdir()
            dsn = os.environ.get("VIGIL_CLICKHOUSE_DSN", "")
            server = None
            served = args.workers > 1 or args.store == "chserver"
            if served and not dsn:  # the store in a process of its own
                server = EmbeddedClickHouse(root / "chdb", log_path=root / "chserver.log")
                dsn = server.start().dsn
            try:
                # The bare consumer once: the N workers are compared with the one.
                others = (
                    {} if broker is None or broker.proc is None else {"broker": broker.proc.pid}
                )
                if server is not None and server.proc is not None:
                    others["chserver"] = server.proc.pid
                figures[count] = drain(
                    bootstrap, events, root, count, dsn, bare=count == 1, others=others
                )
                if server is not None and server.proc is not None:
                    figures[count][1]["store_peak_rss_mb"] = peak_rss(server.proc.pid)
            finally:
                if server is not None:
                    server.stop()
        peer = run_peer(bootstrap, events, args.quix_python) if args.peers else None
    finally:
        if broker is not None:
            broker.stop()
    produced, worker, stored = figures[1]
    result: dict[str, Any] = {
        "events": n,
        "series": args.series,
        "stored_rows": stored,
        # Windows only count events in time: a run whose events came late measures less.
        "late_events": worker["late_events"],
        "windows_stored": worker["windows_stored"],
        "producer_events_per_s": round(produced["events_per_s"]),
        "baseline_consumer_events_per_s": round(produced["baseline"]),
        "pipeline_events_per_s": round(worker["events_per_s"]),
        "pipeline_vs_baseline": round(worker["events_per_s"] / produced["baseline"], 3),
        "worker_ready_seconds": round(worker["ready_seconds"], 2),
        "store": "vigil chserver" if "store_peak_rss_mb" in worker else "chDB in the worker",
        "worker_peak_rss_mb": round(worker["peak_rss_mb"], 1),
        "store_peak_rss_mb": round(worker.get("store_peak_rss_mb", 0.0), 1),
        "envelopes": produced["envelopes"],
        "event_json_bytes_mean": round(json_bytes, 1),
    }
    for run, cpu in (
        ("baseline", produced["baseline_cpu_seconds"]),
        ("pipeline", worker["cpu_seconds"]),
    ):
        for part, us in _per_event(cpu, n).items():
            result[f"{run} cpu us/event: {part}"] = us
    if peer is not None:
        raw, window = peer["raw"], peer["window"]
        result["quix raw loop events_per_s"] = round(raw["events_per_s"])
        result["quix 60s tumbling count+mean events_per_s"] = round(window["events_per_s"])
        result["quix window vs its raw loop"] = round(
            window["events_per_s"] / raw["events_per_s"], 3
        )
        result["quix ready_seconds"] = round(window["ready_seconds"], 2)
        result["vigil pipeline vs quix window"] = round(
            worker["events_per_s"] / window["events_per_s"], 2
        )
    if args.workers > 1:
        k = args.workers
        _, many, stored_many = figures[k]
        result[f"{k} workers: stored_rows"] = stored_many
        result[f"{k} workers: events_per_s"] = round(many["events_per_s"])
        result[f"{k} workers: events_per_s per worker"] = round(many["events_per_s"] / k)
        result[f"{k} workers: events per worker"] = many["events_per_worker"]
        result[f"{k} workers: peak_rss_mb, all"] = round(many["peak_rss_mb"], 1)
        result[f"{k} workers: scaling against one"] = round(
            many["events_per_s"] / worker["events_per_s"], 3
        )
        result["cores"] = os.cpu_count()
    emit(result)


if __name__ == "__main__":
    main()

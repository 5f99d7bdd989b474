"""The ClickHouse side on chDB: how fast the writer stores, how fast history answers.

1. Ingest: events made by ``bench.pipeline.make_events`` go through the worker's processor
   (windows 1m, raw rows) in batches like the worker's (``VIGIL_BATCH_MAX_EVENTS``
   events, in envelopes of 1,000), and
   ``ClickHouseSink.write`` stores each batch: raw rows with their deduplication token,
   the materialized views (executions, spans, logs, daily rollups) and the closed
   windows. Baseline in the same run: the same raw rows inserted the same way into a copy
   of the events table that has no views, batch by batch in turn. Rows per second and
   their ratio.
2. Overlap: whether the event loop's thread (where the worker processes) runs on while
   chDB stores a batch on the store's thread, i.e. whether chDB releases the GIL: a loop
   of Python work, its rate while each batch is stored against its rate alone between
   batches, and its longest pause.
3. History at scale: ``--rows`` (default 10 million) synthetic raw events over 7 days are
   generated inside ClickHouse (INSERT ... SELECT, so the views fill as they would), then
   each main history query runs ``--repeat`` times with varied parameters through
   ``sinks.catalog.run`` on the read-only client: p50 and p99 latency per query.

    python -m bench.sink                      # about 3 minutes
    python -m bench.sink --rows 1000000 --ingest 200000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.pipeline import make_events
from bench.report import emit, progress
from producers.envelopes import EnvelopeBuilder
from sinks import catalog
from sinks.queries import ReadOnly
from sinks.rows import RawRows
from sinks.settings import StoreSettings
from sinks.writer import ClickHouseSink
from streams.processing import Processor
from streams.records import BatchResult
from streams.settings import WorkerSettings
from streams.windows import parse_windows

ENVELOPE_EVENTS = 1000
BATCH_MESSAGES = WorkerSettings().batch_max_events // ENVELOPE_EVENTS
DAY_S = 86_400


def batches(
    n: int, per_batch: int = BATCH_MESSAGES, source: str = "bench/events"
) -> list[BatchResult]:
    """``n`` events through the processor, as the worker's batches (not timed). Batches of
    another ``source`` are other rows to the store (their deduplication tokens differ)."""
    now_ms = int(time.time() * 1000)
    processor = Processor(
        windows=parse_windows("1m"),
        grace_ms=0,
        source=source,
        raw_rows=RawRows(source),
    )
    processor.load(0, None, -1)
    builder = EnvelopeBuilder(max_events=ENVELOPE_EVENTS, max_bytes=1 << 30)
    envelopes = []
    for event in sorted(make_events(n, series=1000), key=lambda e: e["ts"]):
        closed = builder.add(0, orjson.dumps(event))
        if closed is not None:
            envelopes.append(closed[0])
    envelopes.extend(env for _, env, _ in builder.drain())
    out = []
    for i in range(0, len(envelopes), per_batch):
        chunk = envelopes[i : i + per_batch]
        messages = [(0, i + j, env) for j, env in enumerate(chunk)]
        out.append(processor.process(messages, now_ms=now_ms))
    return out


async def ingest(settings: StoreSettings, results: list[BatchResult]) -> dict[str, Any]:
    sink = ClickHouseSink(settings)
    await sink.start()
    db = settings.database
    rows = sum(len(r) for result in results for r in result.raw.values())
    try:
        await sink._call(sink.client.command, f"CREATE TABLE {db}.events_plain AS {db}.events")
        # Interleaved batch by batch, so both see the same machine (it is noisy).
        timings = {"baseline": 0.0, "vigil": 0.0}
        started = time.perf_counter()
        for k, result in enumerate(results):
            t0 = time.perf_counter()
            for raw in result.raw.values():
                token = f"plain:{raw.first}-{raw.last}"
                payload = RawRows(result.source).payload([raw])
                await sink._insert(f"{db}.events_plain", payload, token, fmt="ArrowStream")
            t1 = time.perf_counter()
            await sink.write(result)  # events + views + windows
            timings["baseline"] += t1 - t0
            timings["vigil"] += time.perf_counter() - t1
            progress("ingest batches", k + 1, len(results), started)
        await sink._call(sink.client.command, f"DROP TABLE {db}.events_plain")
    finally:
        await sink.close()
    return {
        "ingest_rows": rows,
        "ingest_baseline_rows_per_s": round(rows / timings["baseline"]),
        "ingest_vigil_rows_per_s": round(rows / timings["vigil"]),
        "ingest_ratio_vs_baseline": round(timings["baseline"] / timings["vigil"], 3),
    }


async def _spin_during(work: Awaitable[Any]) -> tuple[int, float, float]:
    """Python work on the event loop's thread, in slices, while ``work`` runs: the slices
    done, the seconds it ran, and its longest pause between two slices."""
    task = asyncio.ensure_future(work)
    done, longest = 0, 0.0
    started = last = time.perf_counter()
    while not task.done():
        for _ in range(2000):
            pass
        done += 1
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
        await asyncio.sleep(0)
    await task
    return done, time.perf_counter() - started, longest


async def overlap(settings: StoreSettings, results: list[BatchResult]) -> dict[str, Any]:
    """Whether the worker's thread runs on while chDB stores a batch (does chDB release
    the GIL?). A loop of Python work on the event loop's thread, as the processor's stand-in,
    runs while ``ClickHouseSink.write`` stores each batch on the store's thread, and alone
    for as long between batches (the baseline, in the same run). Were the GIL held for an
    insert, the loop would stop for all of it: its longest pause would be the insert's
    time, and its rate would fall by the inserts' share of the time."""
    sink = ClickHouseSink(settings)
    await sink.start()
    done = {"alone": 0, "storing": 0}
    seconds = {"alone": 0.0, "storing": 0.0}
    pauses: dict[str, list[float]] = {"alone": [], "storing": []}
    writes = []
    try:
        for result in results:
            storing = await _spin_during(sink.write(result))
            writes.append(storing[1])
            alone = await _spin_during(asyncio.sleep(storing[1]))
            for key, (n, s, pause) in (("storing", storing), ("alone", alone)):
                done[key] += n
                seconds[key] += s
                pauses[key].append(pause)
    finally:
        await sink.close()
    rate = {k: done[k] / seconds[k] for k in done}
    return {
        "overlap_batches": len(results),
        "overlap_write_ms_mean": round(1000 * statistics.fmean(writes), 1),
        "overlap_python_ratio_while_storing": round(rate["storing"] / rate["alone"], 3),
        "overlap_longest_pause_ms_storing": round(1000 * max(pauses["storing"]), 1),
        "overlap_longest_pause_ms_alone": round(1000 * max(pauses["alone"]), 1),
    }


SYNTHETIC = """
INSERT INTO {db}.events
    (ts, kind, service, name, series, value, ok, status, execution_id, step, trace_id,
     span_id, parent_id, level, message, tags, attrs, source, partition, offset, idx)
WITH
    number % 100 AS r,
    cityHash64(number) AS h,
    multiIf(r < 55, 'metric', r < 60, 'feature', r < 75, 'step.end', r < 78, 'execution.end',
            r < 79, 'recovery', r < 89, 'log', r < 91, 'error', 'span') AS what,
    if(what = 'feature', 'metric', what) AS kind_,
    multiIf(what IN ('step.end', 'execution.end', 'recovery'), 'engine',
            'svc' || toString(h % 20)) AS service_,
    multiIf(what = 'metric', ['latency_ms', 'cpu', 'mem', 'queue_depth'][h % 4 + 1],
            what = 'feature', 'feature_used',
            what IN ('step.end', 'execution.end', 'recovery'), 'wf' || toString(h % 10),
            what = 'error',
                ['TimeoutError', 'KeyError', 'ConnectionError', 'ValueError'][h % 4 + 1],
            what = 'span', ['handle', 'query', 'render', 'fetch'][h % 4 + 1],
            'app') AS name_,
    if(what = 'step.end', 'step' || toString(intDiv(h, 7) % 5), '') AS step_,
    multiIf(what = 'metric', map('host', 'h' || toString(intDiv(h, 11) % 50)),
            what = 'feature',
                map('feature', ['search', 'view', 'buy', 'share'][intDiv(h, 3) % 4 + 1]),
            map()) AS tags_,
    'tr' || toString(intDiv(number, 20) % 2000000) AS trace_
SELECT
    fromUnixTimestamp64Milli(toInt64({start_ms} + number * {span_ms} / {total})) AS ts,
    kind_,
    service_,
    name_,
    kind_ || '|' || service_ || '|' || name_ || if(step_ = '', '', '|step=' || step_)
        || if(empty(tags_), '', '|' || arrayStringConcat(
               arrayMap((k, v) -> k || '=' || v, mapKeys(tags_), mapValues(tags_)), ','))
        AS series,
    multiIf(what IN ('log', 'error'), NULL,
            what = 'feature', 1.0,
            what = 'metric', exp(3 + (h % 1000) / 400.0),
            10 + (h % 5000) / 10.0) AS value,
    multiIf(what IN ('metric', 'log', 'error'), NULL, (h % 17) != 0) AS ok,
    multiIf(what = 'recovery', ['retry', 'fallback'][h % 2 + 1], what = 'span', 'ok', '') AS status,
    if(what IN ('step.end', 'execution.end', 'recovery'), 'ex' || toString(intDiv(number, 30)), '')
        AS execution_id,
    step_,
    if(what IN ('span', 'log'), trace_, '') AS trace_id,
    if(what = 'span', 'sp' || toString(number), '') AS span_id,
    '' AS parent_id,
    multiIf(what = 'log', ['debug', 'info', 'info', 'warning', 'error'][h % 5 + 1], '') AS level,
    multiIf(what IN ('log', 'error'),
            ['connection reset by peer', 'timeout while reading', 'user login ok',
             'cache miss for key', 'payment declined'][intDiv(h, 5) % 5 + 1]
            || ' #' || toString(number), '') AS message,
    tags_,
    multiIf(what = 'feature', '{{"user":"u' || toString(intDiv(h, 13) % 5000)
                || '","session":"s' || toString(intDiv(number, 50)) || '"}}',
            what = 'execution.end', '{{"steps_done":5,"total_steps":5,"recoveries":'
                || toString(h % 3) || '}}',
            '{{}}') AS attrs,
    'bench/synthetic' AS source,
    0 AS partition,
    number AS offset,
    0 AS idx
FROM numbers({first}, {count})
"""


def fill(client: Any, db: str, total: int, end_ms: int, chunk: int = 1_000_000) -> float:
    started = time.perf_counter()
    span_ms = 7 * DAY_S * 1000
    for first in range(0, total, chunk):
        count = min(chunk, total - first)
        sql = SYNTHETIC.format(
            db=db,
            start_ms=end_ms - span_ms,
            span_ms=span_ms,
            total=total,
            first=first,
            count=count,
        )
        client.command(sql, settings={"max_insert_threads": 2})
        progress("synthetic rows", first + count, total, started)
    return time.perf_counter() - started


def query_plan(rng: random.Random) -> dict[str, Any]:
    """Each main query with parameters varied per run (a callable returns fresh ones)."""
    host = lambda: f"h{rng.randrange(50)}"  # noqa: E731
    svc = lambda: f"svc{rng.randrange(20)}"  # noqa: E731
    return {
        "series 24h/5m p95": lambda: (
            "series",
            {
                "series": f"metric|{svc()}|latency_ms|host={host()}",
                "since": "24h",
                "step": "5m",
                "agg": "p95",
            },
        ),
        "series all hosts 7d/1h avg": lambda: (
            "series",
            {"series": f"metric|{svc()}|cpu", "since": "7d", "step": "1h", "agg": "avg"},
        ),
        "workflows 24h": lambda: ("workflows", {"hours": "24"}),
        "steps 24h": lambda: ("steps", {"since": "24h", "limit": "10"}),
        "errors 24h": lambda: ("errors", {"since": "24h", "limit": "10"}),
        "alerts 7d": lambda: ("alerts", {"since": "7d"}),
        "daily by series 7d": lambda: (
            "daily",
            {"days": "7", "name": "latency_ms", "service": svc()},
        ),
        "daily by workflow 7d": lambda: ("daily", {"days": "7", "by": "workflow"}),
        "logs text 24h": lambda: (
            "logs",
            {
                "text": rng.choice(["declined", "reset by", "#12345"]),
                "since": "24h",
                "limit": "100",
            },
        ),
        "logs error+ 1h": lambda: ("logs", {"level": "error+", "since": "1h", "service": svc()}),
        "trace": lambda: ("trace", {"trace_id": f"tr{rng.randrange(2_000_000)}"}),
        "usage 24h": lambda: ("usage", {"since": "24h", "limit": "10"}),
        "compare 1h": lambda: (
            "compare",
            {"series": f"metric|{svc()}|latency_ms|host={host()}", "at": "12h", "window": "1h"},
        ),
    }


def latencies(store: ReadOnly, now: datetime, repeat: int) -> dict[str, Any]:
    rng = random.Random(5)
    out: dict[str, Any] = {}
    worst = []
    for label, make in query_plan(rng).items():
        catalog.run(store, *make(), now=now)  # warm: first read of the parts
        times = []
        for _ in range(repeat):
            name, params = make()
            started = time.perf_counter()
            catalog.run(store, name, params, now=now)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
        out[f"{label} p50_ms"] = round(statistics.median(times), 1)
        out[f"{label} p99_ms"] = round(p99, 1)
        worst.append(p99)
    out["max query p99_ms"] = round(max(worst), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="raw events for queries")
    parser.add_argument("--ingest", type=int, default=1_000_000, help="events to ingest")
    # p99 needs about 100 runs: of 30 it is simply the slowest one.
    parser.add_argument("--repeat", type=int, default=100, help="runs of each query")
    parser.add_argument(
        "--batch-messages", type=int, default=BATCH_MESSAGES, help="envelopes per batch"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary one")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="vigil-bench-sink-"))
    settings = StoreSettings(data_dir=data_dir)
    try:
        result: dict[str, Any] = {}
        result["ingest_batch_events"] = args.batch_messages * ENVELOPE_EVENTS
        result.update(asyncio.run(ingest(settings, batches(args.ingest, args.batch_messages))))
        others = batches(args.ingest, args.batch_messages, source="bench/overlap")
        result.update(asyncio.run(overlap(settings, others)))
        from sinks.store import open_client

        client = open_client(settings)
        try:
            client.command(f"TRUNCATE TABLE {settings.database}.events")
            end_ms = int(time.time() * 1000)
            seconds = fill(client, settings.database, args.rows, end_ms)
            stored = client.query(f"SELECT count() FROM {settings.database}.events").result_rows
            result["query_rows"] = int(stored[0][0])
            result["synthetic_insert_rows_per_s"] = round(args.rows / seconds)
            client.command(f"OPTIMIZE TABLE {settings.database}.events")  # settle merges
            now = datetime.fromtimestamp(end_ms / 1000, UTC)
            result.update(latencies(ReadOnly(client, settings.database), now, args.repeat))
        finally:
            client.close()
        emit(result)
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

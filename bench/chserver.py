"""What sharing the store costs: ``vigil chserver`` over HTTP against chDB in the worker.

The same batches as ``bench.sink`` (events through the worker's processor, 1m windows)
are stored by the worker's ``ClickHouseSink`` twice, batch by batch in turn so that both
see the same machine: into chDB embedded in this process (the baseline, the default of
one worker), and through clickhouse-connect's HTTP client into a ``vigil chserver`` child
process on another directory (what several workers share). Rows per second of each and
their ratio. Then the same history queries on both stores: p50 of each, and their ratio.

    python -m bench.chserver                  # about a minute
    python -m bench.chserver --ingest 500000 --repeat 50
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import emit, progress
from bench.sink import batches
from sinks import catalog
from sinks.queries import ReadOnly
from sinks.settings import StoreSettings
from sinks.writer import ClickHouseSink
from streams.records import BatchResult
from vigil.embedded import EmbeddedClickHouse

QUERIES = {
    "series 1h/1m p95": ("series", {"since": "1h", "step": "1m", "agg": "p95"}),
    "errors 24h": ("errors", {"since": "24h", "limit": "10"}),
    "workflows 24h": ("workflows", {"hours": "24"}),
}


async def ingest(stores: dict[str, StoreSettings], results: list[BatchResult]) -> dict[str, Any]:
    sinks = {name: ClickHouseSink(settings) for name, settings in stores.items()}
    for sink in sinks.values():
        await sink.start()
    rows = sum(len(r) for result in results for r in result.raw.values())
    timings = dict.fromkeys(sinks, 0.0)
    started = time.perf_counter()
    try:
        for k, result in enumerate(results):
            for name, sink in sinks.items():
                t0 = time.perf_counter()
                await sink.write(result)
                timings[name] += time.perf_counter() - t0
            progress("ingest batches (each into both)", k + 1, len(results), started)
    finally:
        for sink in sinks.values():
            await sink.close()
    return {
        "ingest_rows": rows,
        "embedded_rows_per_s": round(rows / timings["embedded"]),
        "chserver_rows_per_s": round(rows / timings["chserver"]),
        "chserver_ingest_ratio_vs_embedded": round(timings["embedded"] / timings["chserver"], 3),
    }


def query_latencies(stores: dict[str, StoreSettings], repeat: int) -> dict[str, Any]:
    from sinks.store import open_client

    clients = {name: open_client(settings, migrate=False) for name, settings in stores.items()}
    try:
        readers = {name: ReadOnly(c, stores[name].database) for name, c in clients.items()}
        series = readers["embedded"].execute(
            "pick", "SELECT series FROM vigil.windows WHERE series LIKE 'metric|%' LIMIT 1", {}
        )[0]["series"]
        now = datetime.now(UTC)
        out: dict[str, Any] = {}
        for label, (name, params) in QUERIES.items():
            params = {**params, "series": series} if name == "series" else params
            p50 = {}
            for store, reader in readers.items():  # same query, same data: in turn
                catalog.run(reader, name, params, now=now)  # warm
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    catalog.run(reader, name, params, now=now)
                    times.append((time.perf_counter() - t0) * 1000)
                p50[store] = statistics.median(times)
                out[f"{label} {store} p50_ms"] = round(p50[store], 1)
            out[f"{label} chserver/embedded"] = round(p50["chserver"] / p50["embedded"], 2)
        return out
    finally:
        for c in clients.values():
            c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ingest", type=int, default=200_000, help="events to store in each")
    parser.add_argument("--repeat", type=int, default=30, help="runs of each query on each")
    parser.add_argument(
        "--batch-messages", type=int, default=20, help="envelopes of 1,000 events per batch"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-chserver-"))
    served = EmbeddedClickHouse(root / "served", log_path=root / "chserver.log")
    try:
        with served:
            stores = {
                "embedded": StoreSettings(data_dir=root / "embedded"),
                "chserver": StoreSettings(clickhouse_dsn=served.dsn),
            }
            result: dict[str, Any] = {"ingest_batch_events": args.batch_messages * 1000}
            result.update(asyncio.run(ingest(stores, batches(args.ingest, args.batch_messages))))
            result.update(query_latencies(stores, args.repeat))
        emit(result)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

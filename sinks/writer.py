"""The ClickHouse writer: inserts a batch's raw rows and closed windows, exactly once.

- A batch's raw rows go in one insert, as the columns of an Arrow stream
  (``sinks.rows.RawRows``), with a deduplication token made of the Kafka offset range
  they cover in each partition; the processor skips offsets already stored,
  so a replay inserts nothing twice even when it batches differently.
- The materialized views that keep executions, spans, logs and daily rollups
  deduplicate the same block too (``deduplicate_blocks_in_dependent_materialized_views``).
- Windows, alert transitions and detector scores carry a token made of their content: a
  window closed again after a replay is the same bytes, and ClickHouse drops the second
  copy. Alert transitions are numbered per partition (``seq``): the worker passes only
  those past the highest stored (:meth:`stored_alerts`), so a replay batched otherwise
  stores none twice either.
- An insert that fails is retried with backoff until it is acknowledged: the agent
  waits, Kafka offsets are not committed, and consumption stops (backpressure) instead
  of buffering without bound.
- Window state checkpoints go into ``worker_state``, once the batch's rows, windows and
  dead letters are stored (the app calls :meth:`checkpoint` last).
- All client calls run on one dedicated thread: chDB and the HTTP client block.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from producers.alerts import Alert
from sinks import rows
from sinks.settings import StoreSettings
from sinks.store import StoreError, open_client
from streams import retrying
from streams.metrics import Latency
from streams.records import BatchResult

log = logging.getLogger(__name__)


class ClickHouseSink:
    def __init__(self, settings: StoreSettings, *, max_backoff: float = 30.0) -> None:
        self.settings = settings
        self.max_backoff = max_backoff
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vigil-clickhouse")
        self.client: Any = None
        self.counts = collections.Counter[str]()
        self.last_error: str | None = None
        #: Time from each insert's first try to its acknowledgement (for /metrics).
        self.latency = Latency()
        #: True while an insert is being retried: ClickHouse is not answering.
        self.failing = False
        #: The table an insert is running into right now, if any (for /stats).
        self.inserting: str | None = None
        #: On a cluster, inserts into the distributed tables return once the shard stored
        #: the rows (a checkpoint is never ahead of them); the deduplication token travels
        #: with the rows to the shard (``sinks.cluster``).
        self._distributed: dict[str, Any] = (
            {"insert_distributed_sync": 1} if settings.cluster else {}
        )

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def start(self) -> None:
        """Open the store, retrying with backoff while it cannot be opened (a server that
        is down, a chDB path another process holds): the worker waits, consuming nothing,
        and catches up once it opens."""
        self.client = await self._until_done(
            "opening the store", "open_retries", (StoreError,), open_client, self.settings
        )

    async def close(self) -> None:
        if self.client is not None:
            await self._call(self.client.close)
            self.client = None
        self._executor.shutdown(wait=True)

    async def stored_offsets(self, source: str) -> dict[int, int]:
        return await self._highest("events", "offset", source)

    async def stored_alerts(self, source: str) -> dict[int, int]:
        return await self._highest("alerts", "seq", source)

    async def _highest(self, table: str, column: str, source: str) -> dict[int, int]:
        """The highest ``column`` stored per partition of ``source`` in ``table``."""
        result = await self._call(
            self.client.query,
            f"SELECT partition, max({column}) FROM {self.settings.database}.{table} "
            "WHERE source = {source:String} GROUP BY partition",
            parameters={"source": source},
        )
        return {int(p): int(n) for p, n in result.result_rows}

    async def load_states(self, source: str, partitions: set[int]) -> dict[int, bytes]:
        # Only the partitions taken over: a checkpoint can be megabytes.
        result = await self._call(
            self.client.query,
            # Named: column_formats goes by the result's column name, and without one
            # clickhouse-connect gives a compressed state (not UTF-8) as a string of hex.
            f"SELECT partition, argMax(state, offset) AS saved "
            f"FROM {self.settings.database}.worker_state "
            "WHERE source = {source:String} AND partition IN {partitions:Array(UInt16)} "
            "GROUP BY partition",
            parameters={"source": source, "partitions": sorted(partitions)},
            column_formats={"saved": "bytes"},
        )
        return {int(p): saved for p, saved in result.result_rows}

    def raw_rows(self, source: str) -> rows.RawRows:
        return rows.RawRows(source)

    async def write(self, result: BatchResult, *, alerts: list[Alert] | None = None) -> None:
        db = self.settings.database
        alerts = result.alerts if alerts is None else alerts
        raws = sorted((r for r in result.raw.values() if len(r)), key=lambda r: r.partition)
        if raws:
            # One insert for every partition of the batch, not one each: with a worker's 4
            # partitions, inserts of 25,000 rows cost chDB 6.2 µs of CPU a row (1.85 of it
            # merging parts) against 3.8 for inserts of 100,000 (a scratch run, 1M rows).
            ranges = ",".join(f"{r.partition}:{r.first}-{r.last}" for r in raws)
            payload = rows.RawRows(result.source).payload(raws)
            token = f"{result.source}:{ranges}"
            await self._insert(f"{db}.events", payload, token, fmt="ArrowStream")
            self.counts["raw_rows"] += sum(map(len, raws))
        if result.closed:
            payload = rows.window_payload(result.closed)
            token = _content_token("w", payload)
            await self._insert(f"{db}.windows", payload, token, fmt="ArrowStream")
            self.counts["windows"] += len(result.closed)
        if alerts:
            payload = rows.lines(rows.alert_row(a, result.source) for a in alerts)
            await self._insert(f"{db}.alerts", payload, _content_token("a", payload))
            self.counts["alerts"] += len(alerts)
        if result.scores:
            payload = rows.lines(rows.score_row(score) for score in result.scores)
            await self._insert(f"{db}.anomaly_scores", payload, _content_token("s", payload))
            self.counts["scores"] += len(result.scores)

    async def checkpoint(self, result: BatchResult) -> None:
        if result.states:
            db = self.settings.database
            rows = [
                [result.source, p, offset, state] for p, (offset, state) in result.states.items()
            ]
            await self._retrying(
                "worker_state",
                self.client.insert,
                f"{db}.worker_state",
                rows,
                column_names=["source", "partition", "offset", "state"],
                settings=self._distributed or None,
            )
            self.counts["checkpoints"] += len(rows)

    async def _insert(
        self, table: str, payload: bytes, token: str, fmt: str = "JSONEachRow"
    ) -> None:
        settings = {
            "insert_deduplication_token": token,
            # A block deduplicated in the source table still reaches the materialized
            # views (executions, spans, logs, rollups) unless they deduplicate it too
            # (measured on chDB 4.4: a replayed insert was counted twice in the rollups).
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            # The six views of `events` run side by side instead of one after the other
            # (bench.sink with views against without: 0.814 and 0.717 in two runs, after
            # 0.666 one after the other).
            "parallel_view_processing": 1,
            "input_format_skip_unknown_fields": 1,
            # JSON parsing is what bounds an insert (seen on chDB while exploring: parsing
            # into a Null table took about as long as the whole insert). The default 10 MiB
            # chunks leave a batch of a few MiB to one thread; 1 MiB chunks use every core.
            "min_chunk_bytes_for_parallel_parsing": 1 << 20,
            **self._distributed,
        }
        await self._retrying(
            table,
            self.client.raw_insert,
            table,
            None,
            payload,
            settings=settings,
            fmt=fmt,
        )

    async def _retrying(self, table: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        def attempt() -> Any:  # ``inserting`` names the table only while a try runs
            self.inserting = table
            try:
                return fn(*args, **kwargs)
            finally:
                self.inserting = None

        first = time.perf_counter()
        # Every driver error: retrying is the only safe move.
        await self._until_done(f"insert into {table}", "insert_retries", (Exception,), attempt)
        self.latency.observe(time.perf_counter() - first)
        self.counts["inserts"] += 1

    async def _until_done(
        self, what: str, counter: str, errors: tuple[type[Exception], ...], fn: Any, *args: Any
    ) -> Any:
        """``fn(*args)`` on the store's thread, again with backoff after each of
        ``errors`` (counted in ``counter``, the last one kept for /ready) until it works."""

        def failed(exc: Exception, wait: float) -> None:
            self.failing = True
            self.counts[counter] += 1
            self.last_error = retrying.reason(exc)

        result = await retrying.until_done(
            lambda: self._call(fn, *args),
            what,
            on_error=failed,
            errors=errors,
            most=self.max_backoff,
        )
        self.failing = False
        return result


def _content_token(prefix: str, payload: bytes) -> str:
    """A deduplication token made of what is inserted: the same rows again are dropped."""
    return f"{prefix}:{hashlib.blake2b(payload, digest_size=16).hexdigest()}"

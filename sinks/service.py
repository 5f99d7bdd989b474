"""History queries served for a process that owns the store (the worker, over HTTP)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sinks.catalog import run
from sinks.queries import HistoryError, ReadOnly
from sinks.store import open_client

log = logging.getLogger(__name__)


class Service:
    """History queries for a process that owns the store (the worker serves them over
    HTTP): a read-only client of its own, opened on first use, and a thread of its own,
    so a slow query never holds up the writer's inserts on the event loop.

    With chDB, this client shares the engine the worker's writer opened in this process
    (chDB allows one process per path, and any number of clients in it).
    """

    def __init__(self, settings: Any, *, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.clock = clock or time.time
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vigil-history")
        self._store: ReadOnly | None = None

    def _run(self, name: str, params: Mapping[str, str]) -> Any:
        if self._store is None:
            self._store = ReadOnly.of(open_client(self.settings, migrate=False), self.settings)
        now = datetime.fromtimestamp(self.clock(), UTC)
        return run(self._store, name, params, now=now)

    async def answer(self, name: str, params: Mapping[str, str]) -> tuple[int, Any]:
        """``(HTTP status, JSON body)``: 200 with the result, else ``{"error": ...}``."""
        loop = asyncio.get_running_loop()
        try:
            return 200, await loop.run_in_executor(self._executor, self._run, name, dict(params))
        except HistoryError as exc:
            return exc.status, {"error": str(exc)}
        except Exception as exc:  # the store is down or not migrated yet: say so, stay up
            log.warning("history query %s failed: %r", name, exc)
            return 503, {"error": f"the store could not answer: {type(exc).__name__}: {exc}"}

    def close(self) -> None:
        if self._store is not None:
            self._store.client.close()
        self._executor.shutdown(wait=False)

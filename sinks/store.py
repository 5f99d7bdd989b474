"""Opening ClickHouse: a server over HTTP, or chDB in this process; same API, same SQL.

chDB allows one process per data directory (a second gets error code 36): the worker
owns it while it runs; other processes open it only when no worker does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import clickhouse_connect

from sinks import migrations
from sinks.settings import StoreSettings


class StoreError(RuntimeError):
    """ClickHouse could not be opened; the message says where and why."""


def open_client(settings: StoreSettings, *, migrate: bool = True) -> Any:
    """A clickhouse-connect client on ``settings.dsn``, with the schema up to date."""
    if settings.embedded and settings.cluster:
        raise StoreError(
            "VIGIL_CLICKHOUSE_CLUSTER needs ClickHouse servers (VIGIL_CLICKHOUSE_DSN): "
            "embedded chDB is one node"
        )
    if settings.embedded:
        path = settings.dsn.removeprefix("chdb://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        client = clickhouse_connect.get_client(dsn=settings.dsn)
    except Exception as exc:  # chDB and HTTP raise different types for the same failure
        hint = (
            " (is a Vigil worker running on this data directory? chDB allows one process)"
            if settings.embedded
            else ""
        )
        raise StoreError(f"cannot open ClickHouse at {settings.dsn}: {exc}{hint}") from exc
    if migrate:
        options = {
            "database": settings.database,
            "retention_days": settings.retention_days,
            "cluster": settings.cluster,
        }
        migrations.apply(client, **options)
        migrations.keep_for(client, **options)
    return client

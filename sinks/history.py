"""History queries. Parameters are bound by the client, never formatted into SQL.

The database name comes from settings and is checked by the migrations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def events_per_kind(client: Any, database: str, *, since: datetime) -> list[tuple[str, int]]:
    rows = client.query(
        f"SELECT kind, count() AS n FROM {database}.events "
        "WHERE ts >= {since:DateTime64(3)} GROUP BY kind ORDER BY n DESC",
        parameters={"since": since},
    ).result_rows
    return [(str(k), int(n)) for k, n in rows]


def workflow_stats(client: Any, database: str, *, since: datetime) -> list[dict[str, Any]]:
    """Per workflow: runs, success rate, mean/p50/p95 duration (ms), recoveries."""
    rows = client.query(
        f"""
        SELECT service, name, count() AS runs, avg(ok) AS success_rate,
               avg(value) AS mean_ms, quantile(0.5)(value) AS p50_ms,
               quantile(0.95)(value) AS p95_ms
        FROM {database}.events
        WHERE kind = 'execution.end' AND ts >= {{since:DateTime64(3)}}
        GROUP BY service, name ORDER BY name
        """,
        parameters={"since": since},
    ).result_rows
    keys = ("service", "workflow", "runs", "success_rate", "mean_ms", "p50_ms", "p95_ms")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def metric_quantiles(
    client: Any, database: str, *, service: str, name: str, since: datetime, bucket_s: int
) -> list[tuple[datetime, int, float, float]]:
    """(bucket start, count, p50, p95) of one metric over time."""
    rows = client.query(
        f"""
        SELECT toStartOfInterval(ts, toIntervalSecond({{bucket:UInt32}})) AS t, count(),
               quantile(0.5)(value), quantile(0.95)(value)
        FROM {database}.events
        WHERE kind = 'metric' AND service = {{service:String}} AND name = {{name:String}}
          AND ts >= {{since:DateTime64(3)}}
        GROUP BY t ORDER BY t
        """,
        parameters={"bucket": bucket_s, "service": service, "name": name, "since": since},
    ).result_rows
    return [(t, int(n), float(p50), float(p95)) for t, n, p50, p95 in rows]

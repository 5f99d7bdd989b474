"""``vigil history NAME``: ask the running worker over HTTP, or the store itself.

A worker that owns the embedded chDB answers ``GET /history/NAME`` (chDB allows one process
per data directory); when none answers at ``VIGIL_HISTORY_URL`` (default: this machine's
``VIGIL_WEB_HOST:VIGIL_WEB_PORT``), the command opens the store itself. Results print as
tables, or as JSON or CSV.
"""

from __future__ import annotations

import csv
import io
import json
import os
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from producers.settings import from_env
from sinks import catalog
from sinks.queries import HistoryError, ReadOnly
from sinks.settings import StoreSettings
from sinks.store import open_client
from sinks.tables import cell, table
from streams import auth
from streams.settings import WorkerSettings
from vigil import webclient


def fetch(
    url: str, name: str, params: dict[str, str], *, timeout: float, token: str | None = None
) -> tuple[int, Any] | None:
    """``(status, body)`` from a worker at ``url``; None when nothing listens there."""
    query = urllib.parse.urlencode(params)
    target = f"{url.rstrip('/')}/history/{urllib.parse.quote(name)}?{query}"
    try:
        return webclient.call(target, token=token, timeout=timeout)
    except webclient.Unreachable:
        return None


def local(settings: StoreSettings, name: str, params: dict[str, str]) -> Any:
    """Run the query on the store directly (raises StoreError, HistoryError)."""
    client = open_client(settings)
    try:
        return catalog.run(ReadOnly.of(client, settings), name, params, now=datetime.now(UTC))
    finally:
        client.close()


def ask(
    settings: StoreSettings,
    url: str | None,
    name: str,
    params: dict[str, str],
    token: str | None = None,
) -> tuple[Any, str]:
    """The answer and where it came from; raises HistoryError or StoreError. The worker
    is asked with ``token``, else the API token of ``VIGIL_API_TOKEN`` or of its data
    directory."""
    if url:
        if token is None:
            configured = from_env(WorkerSettings, os.environ).api_token
            token = auth.client_token(configured, settings.data_dir)
        answered = fetch(url, name, params, timeout=settings.query_timeout_s + 5, token=token)
        if answered is not None:
            status, body = answered
            if status != 200:
                error = HistoryError(body.get("error", f"HTTP {status}"))
                error.status = status
                raise error
            return body, url
    return local(settings, name, params), settings.dsn


# -- printing ---------------------------------------------------------------------------
def render(result: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2, ensure_ascii=False)
    if fmt == "csv":
        return _csv(main_rows(result))
    if isinstance(result, dict) and "roots" in result:
        return _trace(result)
    if isinstance(result, list):
        return table(result)
    out = []
    for key, value in result.items():
        if isinstance(value, list):
            rows = _with_bars(value) if key == "points" else value
            out.append(f"\n{key}\n{table(rows)}")
        elif isinstance(value, dict):
            out.append(f"{key}: " + ", ".join(f"{k}={cell(v)}" for k, v in value.items()))
        else:
            out.append(f"{key}: {cell(value)}")
    return "\n".join(out).strip("\n")


def _with_bars(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values = [p["value"] for p in points if isinstance(p.get("value"), int | float)]
    top = max((abs(v) for v in values), default=0) or 1
    return [
        {**p, "": "#" * round(30 * abs(p["value"]) / top) if p.get("value") is not None else ""}
        for p in points
    ]


def _trace(result: dict[str, Any]) -> str:
    lines = [
        f"trace {result['trace_id']}: {result['spans']} spans, {cell(result['duration_ms'])} ms,"
        f" {result['errors']} failed"
    ]

    def walk(node: dict[str, Any], depth: int) -> None:
        mark = "" if node["ok"] else "  FAILED " + (node["message"] or "")
        pad = "  " * depth
        took = cell(node["duration_ms"])
        lines.append(f"{pad}{node['name']} ({node['service']}) {took} ms{mark}")
        for log in node["logs"]:
            lines.append(f"{pad}  · {log['ts']} {log['level']}: {cell(log['message'])}")
        for child in node["children"]:
            walk(child, depth + 1)

    for root in result["roots"]:
        walk(root, 1)
    for log in result["logs"]:
        lines.append(f"  · {log['ts']} {log['level']}: {cell(log['message'])} (span not stored)")
    return "\n".join(lines)


def main_rows(result: Any) -> list[dict[str, Any]]:
    if isinstance(result, list):
        return result
    for value in result.values():
        if isinstance(value, list):
            return value
    return [result]


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
            )
    return out.getvalue().rstrip("\n")

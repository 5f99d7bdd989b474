"""What operators need from a worker: liveness and readiness, its own metrics in the
Prometheus text format, a bearer token on the HTTP API, and JSON log lines.

Pure pieces, wired by :mod:`streams.app` and :mod:`vigil.worker`:

- :func:`metrics_text` renders a :class:`Snapshot` through ``prometheus_client`` (the
  reference implementation of the format: escaping, HELP/TYPE lines, histograms).
- :class:`Latency` is a cumulative histogram of the sink's insert times.
- :func:`auth_middleware` checks ``Authorization: Bearer <token>`` in constant time on
  every path but :data:`OPEN_PATHS` (probes carry no token).
- :class:`JsonFormatter` writes one JSON object a line.
"""

from __future__ import annotations

import bisect
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

#: Liveness and readiness probes: answered without a token.
OPEN_PATHS = frozenset({"/health", "/ready"})
CONTENT_TYPE = "text/plain; version=0.0.4"  # aiohttp adds the charset

#: Seconds: ClickHouse inserts take milliseconds to seconds (a retried one, longer).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Latency:
    """A cumulative histogram (Prometheus semantics) of durations in seconds."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


@dataclass
class Snapshot:
    """The worker's figures at one moment (what /metrics renders)."""

    counts: Mapping[str, int]
    events_per_s: float
    #: Per partition held: messages in Kafka past the last one applied.
    lag: Mapping[int, int]
    #: Windows open in memory, over the partitions held.
    open_windows: int
    firing: int
    sink_counts: Mapping[str, int]
    sink_latency: Latency
    sink_failing: bool
    uptime_s: float
    assigned: int
    sink_inserting: bool = False
    #: Events forwarded to their series' partition, per partition they arrived on.
    rerouted: Mapping[int, int] = field(default_factory=dict)


#: Counters of the worker: metric name, help, the key in ``Snapshot.counts``.
COUNTERS = (
    ("vigil_events_valid", "Events decoded, checked and applied to windows.", "valid"),
    ("vigil_events_rejected", "Events sent to the dead-letter topic.", "rejected"),
    ("vigil_deadletter", "Messages sent to the dead-letter topic.", "rejected"),
    ("vigil_events_late", "Events that came after their window had closed.", "late"),
    ("vigil_raw_rows", "Raw event rows stored in ClickHouse.", "raw_rows"),
    ("vigil_windows_closed", "Windows closed and stored.", "windows_closed"),
    ("vigil_alert_transitions", "Alert transitions published.", "alerts"),
    ("vigil_replayed_messages", "Kafka messages seen again after a restart.", "replayed_messages"),
    (
        "vigil_rerouted_repeats",
        "Forwarded events skipped because their partition had applied them (a replay "
        "forwarded them again).",
        "rerouted_repeats",
    ),
    (
        "vigil_state_gaps",
        "Messages that did not follow the last one applied to the window state (the ones "
        "between never reached the windows): should stay 0.",
        "state_gaps",
    ),
)


class _Collector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.s = snapshot

    def collect(self) -> Iterator[Any]:
        s = self.s
        for name, doc, key in COUNTERS:
            yield CounterMetricFamily(name, doc, value=s.counts.get(key, 0))
        lag = GaugeMetricFamily(
            "vigil_consumer_lag",
            "Messages in Kafka past the last one applied, per events partition held.",
            labels=["partition"],
        )
        for partition, n in sorted(s.lag.items()):
            lag.add_metric([str(partition)], n)
        yield lag
        rerouted = CounterMetricFamily(
            "vigil_events_rerouted",
            "Events forwarded to their series' partition, per partition they arrived on "
            "(published without the routing key: README, Event schema).",
            labels=["partition"],
        )
        for partition, n in sorted(s.rerouted.items()):
            rerouted.add_metric([str(partition)], n)
        yield rerouted
        gauges = (
            (
                "vigil_consumer_lag_total",
                "Consumer lag over the partitions held.",
                sum(s.lag.values()),
            ),
            ("vigil_events_per_second", "Events handled per second, recent.", s.events_per_s),
            ("vigil_open_windows", "Windows open in memory.", s.open_windows),
            ("vigil_alerts_firing", "Alerts firing here.", s.firing),
            ("vigil_partitions_assigned", "Events partitions held.", s.assigned),
            ("vigil_uptime_seconds", "Seconds since the worker started.", s.uptime_s),
            ("vigil_sink_failing", "1 while a ClickHouse insert is retried.", int(s.sink_failing)),
            ("vigil_sink_inserting", "1 while a ClickHouse insert runs.", int(s.sink_inserting)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value)
        sink = (
            ("vigil_sink_inserts", "ClickHouse inserts acknowledged.", "inserts"),
            (
                "vigil_sink_insert_retries",
                "ClickHouse inserts failed and retried.",
                "insert_retries",
            ),
        )
        for name, doc, key in sink:
            yield CounterMetricFamily(name, doc, s.sink_counts.get(key, 0))
        yield HistogramMetricFamily(
            "vigil_sink_insert_seconds",
            "Time from an insert's first try to its acknowledgement.",
            buckets=s.sink_latency.cumulative(),
            sum_value=s.sink_latency.sum,
        )


def metrics_text(snapshot: Snapshot) -> bytes:
    """``snapshot`` in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot))
    return generate_latest(registry)


# -- the HTTP API's token -----------------------------------------------------------------


def token_matches(header: str | None, token: str) -> bool:
    """Whether ``header`` is ``Bearer <token>``; constant time in the token's content."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


def _same(given: str | None, token: str) -> bool:
    """``given == token`` in time that does not depend on where they differ."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


#: The cookie a browser holds the token in (HttpOnly, SameSite=Strict), set when the
#: dashboard is opened once as ``/dashboard?token=...``.
COOKIE = "vigil_token"


def auth_middleware(token: str) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware: 401 without the bearer token (header, or the dashboard's
    cookie), except on :data:`OPEN_PATHS`."""
    from aiohttp import web

    @web.middleware
    async def check(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        if (
            request.path in OPEN_PATHS
            or token_matches(request.headers.get("Authorization"), token)
            or _same(request.cookies.get(COOKIE), token)
        ):
            return await handler(request)
        if request.path == "/dashboard" and _same(request.query.get("token"), token):
            # The token moves into a cookie and out of the address bar (and history).
            moved = web.HTTPFound("/dashboard")
            moved.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            raise moved
        return web.json_response(
            {"error": "this API needs 'Authorization: Bearer <token>' (VIGIL_API_TOKEN)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="vigil"'},
        )

    return check


TOKEN_FILE = "api-token"


def resolve_token(configured: str, data_dir: Path) -> str | None:
    """The token the API requires: ``configured``; None for ``none``; else the one kept
    in ``<data_dir>/api-token``, made (random, mode 0600) when there is none."""
    if _off(configured):
        return None
    known = configured or _kept(data_dir)
    if known:
        return known
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def client_token(environ: Mapping[str, str], data_dir: Path) -> str | None:
    """The token a client (CLI, demo, tests) sends: ``VIGIL_API_TOKEN``, else the file
    the worker keeps under the data directory, if any."""
    configured = environ.get("VIGIL_API_TOKEN", "")
    return None if _off(configured) else configured or _kept(data_dir)


def _off(configured: str) -> bool:
    return configured.strip().lower() == "none"


def _kept(data_dir: Path) -> str | None:
    """The token the worker keeps under ``data_dir``, if it made one."""
    path = data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else None


# -- logs ---------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
    and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker: JSON or text lines on stderr."""
    formatter = (
        {"()": f"{__name__}.JsonFormatter"}
        if fmt == "json"
        else {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"vigil": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "vigil",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }

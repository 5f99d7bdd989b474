"""A generated history: workflows, metrics, errors, logs, traces and feature usage over the
last 12 hours, with hostile text (quotes, semicolons, SQL keywords) in names, tags and
messages. ``store_history`` writes it the way the worker does (Processor -> ClickHouseSink),
and tests recount what the history queries answer from ``History.events``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from producers.alerts import Alert
from producers.events import partition_for, routing_key, series_key
from sinks.rows import RawRows
from sinks.settings import StoreSettings
from sinks.writer import ClickHouseSink
from streams.processing import Processor
from streams.records import BatchResult, ScoreRecord, WindowRecord
from streams.rules import parse
from streams.windows import parse_windows
from tests.samples import detector_rule

HOUR = 3_600_000
PARTITIONS = 4
HOSTILE_WORKFLOW = "wf'; DROP TABLE vigil.events; --"
HOSTILE_METRIC = "lat'ency; SELECT 1 --"
HOSTILE_TAG = "x' OR '1'='1"
LATENCY = "metric|api|latency_ms|route=/a"
RULES = """
[[rule]]
name = "slow_api"
match = { kind = "metric", name = "latency_ms" }
signal = "p95"
window = "1m"
op = ">"
threshold = 150
min_count = 1
severity = "warning"

[[rule]]
name = "failed_runs"
match = { kind = "execution.end" }
signal = "errors"
window = "1m"
op = ">="
threshold = 1
severity = "critical"
""" + detector_rule("latency_anomaly", metric="latency_ms", severity="warning")


@dataclass
class History:
    now_ms: int
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    #: What the processor made of the events: closed windows and detector scores.
    windows: list[WindowRecord] = field(default_factory=list)
    scores: list[ScoreRecord] = field(default_factory=list)
    deploy_ms: int = 0

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["kind"] == kind and all(e.get(k) == v for k, v in match.items())
        ]


def generate(now_ms: int, seed: int = 11) -> History:
    rng = random.Random(seed)
    h = History(now_ms=now_ms)
    start = now_ms - 12 * HOUR

    def add(**event: Any) -> dict[str, Any]:
        event.setdefault("service", "api")
        h.events.append(event)
        return event

    # Workflows: etl in both 6-hour halves, the hostile one only in the last.
    for workflow, runs_before, runs_now in (("etl", 20, 30), (HOSTILE_WORKFLOW, 0, 10)):
        for i in range(runs_before + runs_now):
            half = 0 if i < runs_before else 1
            t = start + half * 6 * HOUR + rng.randrange(6 * HOUR - 10 * 60_000)
            eid = f"{workflow[:3]}-{i}"
            add(kind="execution.start", ts=t, name=workflow, execution_id=eid, service="engine")
            clock, ok_all, recoveries = t, True, 0
            for step in ("extract", "load"):
                duration = rng.uniform(50, 400) * (2 if step == "load" else 1)
                ok = rng.random() > (0.1 if step == "extract" else 0.25)
                clock += int(duration)
                add(
                    kind="step.end",
                    ts=clock,
                    name=workflow,
                    execution_id=eid,
                    step=step,
                    value=duration,
                    ok=ok,
                    service="engine",
                )
                if not ok:
                    recoveries += 1
                    recovered = rng.random() > 0.4
                    add(
                        kind="recovery",
                        ts=clock + 1,
                        name=workflow,
                        execution_id=eid,
                        step=step,
                        ok=recovered,
                        status=rng.choice(["retry", "fallback"]),
                        service="engine",
                        # Every other one timed (run.recovery() as a context manager).
                        **({"value": float(40 * recoveries)} if recoveries % 2 else {}),
                    )
                    ok_all = ok_all and recovered
            add(
                kind="execution.end",
                ts=clock + 2,
                name=workflow,
                execution_id=eid,
                value=float(clock + 2 - t),
                ok=ok_all,
                status="success" if ok_all else "failed",
                attrs={"steps_done": 2, "total_steps": 2, "recoveries": recoveries},
                service="engine",
            )

    # A latency series that shifts up after a deploy; a hostile metric with a hostile tag.
    h.deploy_ms = now_ms - 3 * HOUR
    add(kind="log", ts=h.deploy_ms, name="deploy", level="info", message="deployed v2.1")
    for i in range(600):
        t = now_ms - 6 * HOUR + i * 36_000
        base = 100 if t < h.deploy_ms else 130
        add(kind="metric", ts=t, name="latency_ms", value=rng.gauss(base, 15), tags={"route": "/a"})
    for i in range(20):
        add(
            kind="metric",
            ts=start + i * 600_000,
            name="latency_ms",
            value=50.0 + i,
            tags={"route": "/b"},
        )
    for i in range(50):
        add(
            kind="metric",
            ts=start + i * 60_000,
            name=HOSTILE_METRIC,
            value=float(i),
            tags={"q": HOSTILE_TAG},
        )

    # The resource sampler's CPU samples of one service, every 15 minutes.
    for i in range(48):
        add(kind="metric", ts=start + i * 15 * 60_000 + 7, name="cpu_percent",
            value=round(rng.uniform(5, 95), 2), service="worker")  # fmt: skip
        add(kind="metric", ts=start + i * 15 * 60_000 + 7, name="container_memory_mb",
            value=float(400 + i), service="worker")  # fmt: skip

    # Errors, log lines with LIKE characters and SQL in them, and one trace.
    for name, n in (("TimeoutError", 7), ("KeyError", 3), ("Drop'Table;Error", 2)):
        for i in range(n):
            add(
                kind="error",
                ts=start + rng.randrange(12 * HOUR),
                name=name,
                message=f"{name} #{i}: it's; DROP TABLE logs",
            )
    messages = ["100% done_now", "SELECT * FROM users; --", "plain line", "Path C:\\tmp\\x"]
    for i in range(40):
        add(
            kind="log",
            ts=start + rng.randrange(12 * HOUR),
            name="app",
            level=rng.choice(["debug", "info", "warning", "error"]),
            message=f"{rng.choice(messages)} [{i}]",
        )
    trace_start = now_ms - 2 * HOUR
    spans = [
        ("root", None, 0, 500),
        ("db", "root", 10, 200),
        ("cache", "root", 220, 30),
        ("query", "db", 20, 150),
    ]
    for name, parent, offset, duration in spans:
        span = {
            "kind": "span",
            "ts": trace_start + offset,
            "name": name,
            "trace_id": "t-1",
            "span_id": f"s-{name}",
            "value": float(duration),
            "ok": name != "query",
            "status": "ok" if name != "query" else "error",
        }
        if parent:
            span["parent_id"] = f"s-{parent}"
        add(**span)
    add(
        kind="log",
        ts=trace_start + 30,
        name="app",
        level="error",
        message="query failed",
        trace_id="t-1",
        span_id="s-query",
    )
    add(
        kind="log",
        ts=trace_start + 600,
        name="app",
        level="info",
        message="after the trace",
        trace_id="t-1",
        span_id="s-gone",
    )

    # Feature usage: sessions walking through features in order.
    # One path is longer than the longest run a query asks for (10).
    long = ["search", "view", "view", "buy", "search", "view", "share", "buy", "view", "buy"]
    paths = [["search", "view", "buy"], ["search", "view", "view"], ["search", "buy"], long + long]
    for s in range(12):
        user, session = f"u{s % 5}", f"s{s}"
        t = start + rng.randrange(11 * HOUR)
        for j, feature in enumerate(paths[s % 4]):
            add(
                kind="metric",
                ts=t + j * 1000,
                name="feature_used",
                value=1.0,
                tags={"feature": feature},
                ok=j != 2 or s % 5 != 0,
                attrs={"user": user, "session": session, "function": feature},
            )
    for e in h.events:
        e["series"] = series_key({**e, "tags": e.get("tags") or {}})
    return h


def processed(h: History, source: str = "c/t") -> list[BatchResult]:
    """``h`` through the worker's processor (windows, rules, raw rows): envelopes of 50
    events per partition, one batch per partition. ``h.alerts``, ``h.windows`` and
    ``h.scores`` get the transitions, closed windows and detector scores."""
    rules = parse(RULES, "rules.toml", windows=("1m",))
    processor = Processor(
        windows=parse_windows("1m"),
        grace_ms=0,
        source=source,
        raw_rows=RawRows(source),
        rules=rules,
    )
    by_partition: dict[int, list[bytes]] = {}
    for e in sorted(h.events, key=lambda e: e["ts"]):
        event = {k: v for k, v in e.items() if k != "series"}
        by_partition.setdefault(partition_for(routing_key(e), PARTITIONS), []).append(
            orjson.dumps(event)
        )
    results = []
    h.alerts.clear()
    h.windows.clear()
    h.scores.clear()
    for p in range(PARTITIONS):
        processor.load(p, None, -1)
    for p, lines in sorted(by_partition.items()):
        messages = [
            (p, offset, b"\n".join(lines[i : i + 50]))
            for offset, i in enumerate(range(0, len(lines), 50))
        ]
        result = processor.process(messages, now_ms=h.now_ms)
        assert not result.rejected, result.rejected[:1]
        h.alerts.extend(result.alerts)
        h.windows.extend(result.closed)
        h.scores.extend(result.scores)
        results.append(result)
    return results


def store_history(
    h: History, data_dir: Path, source: str = "c/t", *, retention_days: int = 90
) -> None:
    """Write ``h`` as the worker does: :func:`processed`, then the real ClickHouse writer.
    Each history stored in one store needs its own ``source`` (Kafka log)."""
    results = processed(h, source)
    sink = ClickHouseSink(StoreSettings(data_dir=data_dir, retention_days=retention_days))

    async def write() -> None:
        await sink.start()
        try:
            for result in results:
                await sink.write(result)
        finally:
            await sink.close()

    asyncio.run(write())

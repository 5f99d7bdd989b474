"""What OpenTelemetry in costs: spans and metric points through ``vigil otlp`` against the
same events through the SDK, in the same run on the embedded broker.

1. OTLP path: N spans, then N metric points, made by the OpenTelemetry SDK and encoded
   by its own OTLP encoder into requests of 512 items (the batch span processor's
   default), POSTed to the receiver (running in this process) by ``--exporters``
   exporters at once, each one request at a time as an SDK's exporter does; each answer
   comes once the broker has the request's events. Rate from the first POST to the last
   answer, and the process CPU time per item.
2. Baseline: the very events the receiver made of them, published with the SDK's
   ``Client.publish`` and flushed, in the same process.

The worker does the same work for both (the events are the same), so the difference is
the receiver's: decoding, mapping, and one round trip to the broker per request.

    python -m bench.otlp --items 100000
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import emit, progress
from producers import Client, ProducerSettings
from producers import otlp as mapping
from vigil.embedded import EmbeddedBroker
from vigil.otlp import OtlpSettings, serve

BATCH = 512


def span_requests(n: int) -> list[bytes]:
    """``n`` spans of 20 names in a few traces, as OTLP protobuf requests."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(n):
        with tracer.start_as_current_span(f"op{i % 20}", attributes={"i": i % 7}):
            pass
    spans = memory.get_finished_spans()
    return [encode_spans(spans[i : i + BATCH]).SerializeToString() for i in range(0, n, BATCH)]


def metric_requests(n: int) -> list[bytes]:
    """``n`` gauge points of 20 series, as OTLP protobuf requests of 512 points."""
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    out = []
    now = time.time_ns()
    for start in range(0, n, BATCH):
        request = metrics_service_pb2.ExportMetricsServiceRequest()
        rm = request.resource_metrics.add()
        kv = rm.resource.attributes.add(key="service.name")
        kv.value.string_value = "bench"
        metric = rm.scope_metrics.add().metrics.add(name="load")
        for i in range(start, min(start + BATCH, n)):
            point = metric.gauge.data_points.add(as_double=float(i % 100), time_unix_nano=now)
            tag = point.attributes.add(key="host")
            tag.value.string_value = f"h{i % 20}"
        out.append(request.SerializeToString())
    return out


async def through_receiver(
    settings: ProducerSettings, path: str, bodies: list[bytes], items: int, lanes: int
) -> dict[str, float]:
    import aiohttp

    stop, ready = asyncio.Event(), asyncio.Event()
    port: list[int] = []

    def listening(bound: int) -> None:
        port.append(bound)
        ready.set()

    options = OtlpSettings(otlp_port=0, otlp_flush_seconds=60)
    task = asyncio.create_task(serve(options, settings, None, ready=listening, stop=stop))
    await ready.wait()
    url = f"http://127.0.0.1:{port[0]}{path}"
    headers = {"Content-Type": "application/x-protobuf"}
    try:
        async with aiohttp.ClientSession() as session:
            began, cpu = time.perf_counter(), time.process_time()
            sent = [0]

            async def lane(mine: list[bytes]) -> None:
                for body in mine:
                    async with session.post(url, data=body, headers=headers) as response:
                        assert response.status == 200, await response.text()
                        await response.read()
                    sent[0] += 1
                    if sent[0] % 20 == 0:
                        progress(path, min(sent[0] * BATCH, items), items, began)

            await asyncio.gather(*(lane(bodies[i::lanes]) for i in range(lanes)))
            wall, used = time.perf_counter() - began, time.process_time() - cpu
    finally:
        stop.set()
        await task
    return {"per_s": items / wall, "cpu_us": used / items * 1e6}


async def through_sdk(settings: ProducerSettings, events: list[dict[str, Any]]) -> dict[str, float]:
    async with Client(settings) as client:
        began, cpu = time.perf_counter(), time.process_time()
        for event in events:
            while not client.publish(event):
                await asyncio.sleep(0.001)
        assert await client.flush(120)
        wall, used = time.perf_counter() - began, time.process_time() - cpu
    return {"per_s": len(events) / wall, "cpu_us": used / len(events) * 1e6}


def _events(signal: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for body in bodies:
        out.extend(mapping.translate(signal, mapping.decode(signal, body, json=False)).events)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="spans, and metric points")
    parser.add_argument(
        "--exporters", type=int, default=4, help="exporters posting at once (each one at a time)"
    )
    args = parser.parse_args()
    n = args.items
    spans, points = span_requests(n), metric_requests(n)
    result: dict[str, Any] = {"items": n, "items_per_request": BATCH, "exporters": args.exporters}
    log_path = Path(tempfile.mkdtemp(prefix="vigil-bench-")) / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        base = ProducerSettings(
            kafka_bootstrap=broker.bootstrap,
            namespace="bench",
            resource_interval_s=0,
            capture_runtime=False,
        )
        for name, signal, path, bodies in (
            ("spans", "traces", "/v1/traces", spans),
            ("metric_points", "metrics", "/v1/metrics", points),
        ):
            events = _events(signal, bodies)
            assert len(events) == n, (name, len(events))
            otlp = asyncio.run(
                through_receiver(
                    dataclasses.replace(base, namespace=f"o{name}"), path, bodies, n, args.exporters
                )
            )
            sdk = asyncio.run(through_sdk(dataclasses.replace(base, namespace=f"s{name}"), events))
            result[f"otlp_{name}_per_s"] = round(otlp["per_s"])
            result[f"sdk_{name}_per_s"] = round(sdk["per_s"])
            result[f"otlp_{name}_ratio_to_sdk"] = round(otlp["per_s"] / sdk["per_s"], 3)
            result[f"otlp_cpu_us_per_{name[:-1]}"] = round(otlp["cpu_us"], 2)
            result[f"sdk_cpu_us_per_{name[:-1]}"] = round(sdk["cpu_us"], 2)
    emit(result)


if __name__ == "__main__":
    main()

"""OpenTelemetry in: the real OpenTelemetry SDK and its OTLP/HTTP exporters pointed at
``vigil otlp``, and OTLP bytes on Kafka topics as the Collector's Kafka exporter writes
them; a real worker and store behind. What the store holds is compared both ways with what
was recorded: every span, metric point and log record, nothing else."""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from google.protobuf import json_format

from producers.events import series_key
from producers.topics import Topics
from tests.topics import read_records
from vigil.otlp import OtlpSettings, serve

pytestmark = pytest.mark.integration

TOKEN_HEADER = "Authorization"


class OtlpProcess:
    """``vigil otlp`` on a free port, in this test's event loop."""

    def __init__(self, kafka_settings: Any, token: str, topics: str = "") -> None:
        self.settings = OtlpSettings(otlp_port=0, otlp_kafka_topics=topics, otlp_flush_seconds=20)
        self.kafka, self.token = kafka_settings, token
        self.stop = asyncio.Event()
        self.port: int | None = None

    async def __aenter__(self) -> OtlpProcess:
        listening = asyncio.Event()

        def ready(port: int) -> None:
            self.port = port
            listening.set()

        self.task = asyncio.create_task(
            serve(self.settings, self.kafka, self.token, ready=ready, stop=self.stop)
        )
        await asyncio.wait_for(listening.wait(), 30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def post(self, path: str, body: bytes, content_type: str, **headers: str) -> Any:
        import aiohttp

        auth = {TOKEN_HEADER: f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.url + path,
                data=body,
                headers={"Content-Type": content_type, **auth, **headers},
            ) as response,
        ):
            return response.status, await response.read()


def _sdk(url: str, token: str) -> tuple[Any, Any, Any, logging.Logger]:
    """The OpenTelemetry SDK's tracer, meter and logger providers, exporting OTLP/HTTP
    to ``url`` (traces gzip-compressed), and a Python logger that sends its records."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = {TOKEN_HEADER: f"Bearer {token}"}
    resource = Resource.create({"service.name": "checkout", "host.name": "h1"})
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=url + "/v1/traces", headers=headers, compression=Compression.Gzip
            )
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url + "/v1/metrics", headers=headers),
        export_interval_millis=3_600_000,
    )
    metering = MeterProvider(resource=resource, metric_readers=[reader])
    logging_provider = LoggerProvider(resource=resource)
    logging_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=url + "/v1/logs", headers=headers))
    )
    logger = logging.getLogger("checkout.app")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(LoggingHandler(logger_provider=logging_provider))
    return tracing, metering, logging_provider, logger


async def _create(bootstrap: str, names: list[str]) -> None:
    """The Collector's topics, made as its Kafka exporter would before writing."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
    finally:
        await admin.close()


def _rows(ch: Any) -> list[dict[str, Any]]:
    result = ch.query(
        "SELECT kind, service, name, value, ok, status, trace_id, span_id, parent_id, "
        "execution_id, step, level, message, tags, attrs FROM vigil.events ORDER BY ts, kind"
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


async def _stored(ch: Any, wanted: int, timeout: float = 90) -> list[dict[str, Any]]:
    """The raw rows once ``wanted`` are stored (then 2 s more, so extras show too)."""
    deadline = time.monotonic() + timeout
    while len(rows := await asyncio.to_thread(_rows, ch)) < wanted:
        assert time.monotonic() < deadline, f"{len(rows)} of {wanted} rows stored: {rows}"
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    return await asyncio.to_thread(_rows, ch)


# The SDK's logging bridge moves to opentelemetry-instrumentation-logging; it still works.
@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
async def test_the_opentelemetry_sdk_exports_to_vigil_and_the_store_has_every_item(
    kafka_settings, start_worker, shared_store, tmp_path
):
    worker = start_worker(VIGIL_CLICKHOUSE_DSN=shared_store.dsn, VIGIL_RULES="none")
    token = worker.token
    async with OtlpProcess(kafka_settings, token) as receiver:
        tracing, metering, logging_provider, logger = _sdk(receiver.url, token)
        tracer = tracing.get_tracer("shop")
        meter = metering.get_meter("shop")
        orders = meter.create_counter("orders")
        latency = meter.create_histogram("pay_ms", unit="ms")
        queue = meter.create_gauge("queue_depth")
        workflow = {"vigil.workflow": "fulfil", "vigil.total_steps": 2}
        with tracer.start_as_current_span("fulfil", attributes=workflow) as root:
            for step in ("pick", "ship"):
                with tracer.start_as_current_span(
                    step, attributes={"vigil.workflow": "fulfil", "vigil.step": step}
                ) as span:
                    span.add_event("scanned", {"items": 3})
            logger.warning("parcel %s left", "p-1")  # inside the trace: correlated
        from opentelemetry.trace import Status, StatusCode

        with tracer.start_as_current_span("charge") as failing:
            failing.set_status(Status(StatusCode.ERROR, "card declined"))
        logger.info("done")
        orders.add(2, {"region": "eu"})
        orders.add(3, {"region": "eu"})
        latency.record(10.0)
        latency.record(30.0)
        queue.set(7.5)
        for provider in (tracing, metering, logging_provider):
            assert await asyncio.to_thread(provider.force_flush, 30_000)
        trace_id = format(root.get_span_context().trace_id, "032x")

        with shared_store.client() as ch:
            rows = await _stored(ch, 15)
        for provider in (tracing, metering, logging_provider):
            await asyncio.to_thread(provider.shutdown)

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)
    # Every item, and nothing else (the SDK makes the expected ones; no other event).
    assert sorted(by_kind) == [
        "execution.end", "execution.start", "log", "metric", "span", "step.end", "step.start"
    ]  # fmt: skip
    assert all(row["service"] == "checkout" for row in rows)
    spans = {r["name"]: r for r in by_kind["span"]}
    assert sorted(spans) == ["charge", "fulfil", "pick", "ship"]
    assert {spans[n]["trace_id"] for n in ("fulfil", "pick", "ship")} == {trace_id}
    assert spans["pick"]["parent_id"] == spans["fulfil"]["span_id"]
    assert (spans["charge"]["ok"], spans["charge"]["status"]) == (False, "error")
    assert spans["charge"]["message"] == "card declined"
    pick = orjson.loads(spans["pick"]["attrs"])
    assert pick["span_kind"] == "internal" and pick["events"][0]["items"] == 3
    assert pick["resource"]["host.name"] == "h1"  # and no telemetry.sdk.* attributes
    assert not [k for k in pick["resource"] if k.startswith("telemetry.sdk.")]

    metrics = {(r["name"], tuple(sorted(r["tags"].items()))): r["value"] for r in by_kind["metric"]}
    assert metrics == {
        ("orders", (("region", "eu"),)): 5.0,  # a cumulative sum: its running total
        ("pay_ms", ()): 20.0,  # a histogram: its mean
        ("queue_depth", ()): 7.5,
    }
    histogram = next(orjson.loads(r["attrs"]) for r in by_kind["metric"] if r["name"] == "pay_ms")
    assert (histogram["count"], histogram["sum"], histogram["unit"]) == (2, 40.0, "ms")

    logs = {r["message"]: r for r in by_kind["log"]}
    assert sorted(logs) == ["done", "parcel p-1 left"]
    assert (logs["parcel p-1 left"]["level"], logs["parcel p-1 left"]["trace_id"]) == (
        "warning",
        trace_id,
    )
    assert logs["done"]["level"] == "info" and logs["done"]["name"] == "checkout.app"

    # The workflow span drove execution tracking: one run of two steps, both done.
    assert [r["step"] for r in by_kind["step.end"]] == ["pick", "ship"]
    assert {r["execution_id"] for r in by_kind["execution.end"]} == {trace_id}
    status, flow = worker.call("/workflows/fulfil")
    assert status == 200 and flow["runs"] == 1 and flow["success_rate"] == 1.0, flow
    # Windows and history show them.
    key = series_key({"kind": "metric", "service": "checkout", "name": "orders",
                      "tags": {"region": "eu"}})  # fmt: skip
    status, opened = worker.call(f"/series/open?series={quote(key)}")
    assert status == 200 and opened["windows"], opened
    assert opened["windows"][0]["count"] == 1 and opened["windows"][0]["mean"] == 5.0
    status, found = worker.call("/history/logs?since=1h&text=parcel")
    assert status == 200 and [r["trace_id"] for r in found] == [trace_id], found


async def test_otlp_json_and_collector_topics_arrive_and_bad_input_is_refused_or_dead_lettered(
    kafka_settings, start_worker, shared_store
):
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    worker = start_worker(VIGIL_CLICKHOUSE_DSN=shared_store.dsn, VIGIL_RULES="none")
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "edge"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("edge")
    for name in ("via-json", "via-kafka-proto", "via-kafka-json"):
        with tracer.start_as_current_span(name):
            pass
    spans = {s.name: encode_spans([s]) for s in memory.get_finished_spans()}

    def otlp_json(request: Any) -> bytes:
        """OTLP/JSON as the specification writes it: ids in hex, not protobuf's base64."""
        body = json_format.MessageToDict(request)
        for rs in body["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for key in ("traceId", "spanId"):
                        span[key] = __import__("base64").b64decode(span[key]).hex()
        return orjson.dumps(body)

    # An exponential histogram has no Vigil form: answered as a partial success.
    exponential = metrics_service_pb2.ExportMetricsServiceRequest()
    metric = exponential.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "sizes"
    metric.exponential_histogram.data_points.add(count=3, sum=6.0, time_unix_nano=10**18)

    topics = "otlp_spans,otlp_metrics"
    await _create(kafka_settings.kafka_bootstrap, topics.split(","))
    async with OtlpProcess(kafka_settings, worker.token, topics=topics) as receiver:
        status, _ = await receiver.post(
            "/v1/traces", otlp_json(spans["via-json"]), "application/json"
        )
        assert status == 200
        status, body = await receiver.post(
            "/v1/metrics",
            gzip.compress(exponential.SerializeToString()),
            "application/x-protobuf",
            **{"Content-Encoding": "gzip"},
        )
        answer = metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)
        assert status == 200 and answer.partial_success.rejected_data_points == 1
        assert "exponential histogram" in answer.partial_success.error_message
        # Refused: not OTLP, another content type, no token.
        assert (await receiver.post("/v1/logs", b"\xff\x00junk", "application/x-protobuf"))[
            0
        ] == 400
        assert (await receiver.post("/v1/logs", b"{}", "text/plain"))[0] == 415
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.post(receiver.url + "/v1/logs", data=b"") as response,
        ):
            assert response.status == 401

        # The Collector's Kafka exporter: otlp_proto and otlp_json messages, and one that
        # is neither.
        producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("otlp_spans", spans["via-kafka-proto"].SerializeToString())
            await producer.send_and_wait("otlp_spans", otlp_json(spans["via-kafka-json"]))
            await producer.send_and_wait("otlp_metrics", b"not otlp at all")
        finally:
            await producer.stop()
        with shared_store.client() as ch:
            rows = await _stored(ch, 3)
    assert sorted(r["name"] for r in rows) == ["via-json", "via-kafka-json", "via-kafka-proto"]
    assert all(r["kind"] == "span" and r["service"] == "edge" for r in rows)
    trace_ids = {format(s.context.trace_id, "032x") for s in memory.get_finished_spans()}
    assert {r["trace_id"] for r in rows} == trace_ids

    deadletter = Topics.for_namespace(kafka_settings.namespace).deadletter
    dead = await read_records(kafka_settings.kafka_bootstrap, deadletter, 2)
    reasons = {dict(r.headers)["vigil-source-topic"]: dict(r.headers) for r in dead}
    assert sorted(reasons) == [b"otlp/v1/metrics", b"otlp_metrics"]
    assert b"exponential histogram" in reasons[b"otlp/v1/metrics"]["vigil-reason"]
    from_kafka = reasons[b"otlp_metrics"]
    assert b"not an OTLP protobuf metrics request" in from_kafka["vigil-reason"]
    assert (from_kafka["vigil-source-partition"], from_kafka["vigil-source-offset"]) == (
        b"0",
        b"0",
    )
    assert next(r.value for r in dead if r.value == b"not otlp at all")

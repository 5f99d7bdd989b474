"""OpenTelemetry's OTLP as Vigil events: traces, metrics and logs from any OTel SDK or
Collector, decoded with the official ``opentelemetry-proto`` messages.

:func:`decode` reads an OTLP request body (protobuf or OTLP/JSON);
:func:`translate` turns it into schema v1 events, and what has no Vigil form into
:class:`Unmapped` items with the reason (the receiver dead-letters them).

| OTLP                                  | Vigil event                                        |
| ------------------------------------- | -------------------------------------------------- |
| resource ``service.name``             | ``service`` (``unknown_service`` without one)      |
| other resource attributes             | ``attrs.resource`` (``telemetry.sdk.*`` left out)  |
| span                                  | ``span``: ``ts`` its start, ``value`` its duration |
|                                       | in ms, ``trace_id``/``span_id``/``parent_id`` in   |
|                                       | hex, ``status`` ``ok``/``error``/``unset`` (``ok`` |
|                                       | false on error) with its message, ``attrs``: its   |
|                                       | attributes, ``span_kind``, ``scope`` and its span  |
|                                       | events (name, ``ts``, attributes)                  |
| span with ``vigil.workflow``          | also ``execution.start`` and ``execution.end`` of  |
|                                       | that workflow (``vigil.execution_id``, else the    |
|                                       | trace id; ``vigil.total_steps``); with             |
|                                       | ``vigil.step``, ``step.start`` and ``step.end``    |
| gauge or sum data point               | ``metric``: the metric's name, the point's value   |
|                                       | and time, its attributes as ``tags`` (strings),    |
|                                       | ``attrs.unit``                                     |
| histogram data point                  | ``metric`` of value ``sum / count`` (the mean),    |
|                                       | ``attrs``: count, sum, min, max, bounds, buckets   |
| log record                            | ``log``: ``message`` its body, ``level`` from its  |
|                                       | severity, ``name`` its scope (``otel`` without),   |
|                                       | ``trace_id``/``span_id`` for correlation           |
| exponential histogram, summary, a     | not mapped: dead-lettered with the reason          |
| point without a value or a sum        |                                                    |

A Vigil ``metric`` is one sample: a cumulative sum arrives as its running total (as
Prometheus stores a counter) and a cumulative histogram as its mean since start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

#: The OTLP/HTTP paths and the signal each carries.
PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
#: Words in a Kafka topic's name that say which signal it carries (the Collector's Kafka
#: exporter writes ``otlp_spans``, ``otlp_metrics`` and ``otlp_logs`` by default).
TOPIC_WORDS = {"traces": ("span", "trace"), "metrics": ("metric",), "logs": ("log",)}
#: A request body is refused past this many bytes, compressed or not.
MAX_BODY_BYTES = 32 << 20

_SDK_PREFIX = "telemetry.sdk."
_ORDER = {"execution.start": 0, "step.start": 1, "step.end": 3, "execution.end": 4}
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId"})
_LEVELS = ((5, "debug"), (9, "debug"), (13, "info"), (17, "warning"), (21, "error"))
_WORDS = {"trace": "debug", "warn": "warning", "fatal": "critical", "err": "error"}


class OtlpError(ValueError):
    """A body that is not an OTLP request of its signal; the message says why."""


@dataclass(frozen=True)
class Unmapped:
    """An OTLP item with no Vigil form: the item as JSON, and why."""

    item: bytes
    reason: str


@dataclass
class Translated:
    events: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)


def _messages(signal: str) -> tuple[Any, Any]:
    """The ``Export*ServiceRequest`` and ``Export*ServiceResponse`` classes of ``signal``."""
    if signal == "traces":
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as m

        return m.ExportTraceServiceRequest, m.ExportTraceServiceResponse
    if signal == "metrics":
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as n

        return n.ExportMetricsServiceRequest, n.ExportMetricsServiceResponse
    if signal == "logs":
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as o

        return o.ExportLogsServiceRequest, o.ExportLogsServiceResponse
    raise OtlpError(f"unknown OTLP signal {signal!r}; expected traces, metrics or logs")


def response_type(signal: str) -> Any:
    """The ``Export*ServiceResponse`` message class of ``signal``."""
    return _messages(signal)[1]


def decode(signal: str, body: bytes, *, json: bool) -> Any:
    """The ``Export*ServiceRequest`` of ``signal`` in ``body`` (protobuf, or OTLP/JSON
    with ``json``; the Collector's Kafka exporter writes the same two encodings). A gzip
    ``Content-Encoding`` is undone before (by the HTTP server; Kafka's compression by
    the consumer)."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError

    if len(body) > MAX_BODY_BYTES:
        raise OtlpError(f"the body is {len(body)} bytes, more than {MAX_BODY_BYTES}")
    message = _messages(signal)[0]()
    try:
        if json:
            # OTLP/JSON writes trace and span ids in hex where protobuf's JSON has base64.
            json_format.ParseDict(_ids_as_base64(orjson.loads(body)), message)
        else:
            message.ParseFromString(body)
    except (DecodeError, json_format.ParseError, orjson.JSONDecodeError, ValueError) as exc:
        encoding = "OTLP/JSON" if json else "OTLP protobuf"
        raise OtlpError(f"not an {encoding} {signal} request: {exc}") from None
    return message


def _ids_as_base64(value: Any) -> Any:
    import base64

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _ID_KEYS and isinstance(v, str) and v:
                try:
                    v = base64.b64encode(bytes.fromhex(v)).decode()
                except ValueError:
                    raise OtlpError(f"{k} {v!r} is not hex") from None
            out[k] = _ids_as_base64(v)
        return out
    if isinstance(value, list):
        return [_ids_as_base64(v) for v in value]
    return value


def translate(signal: str, request: Any) -> Translated:
    """The events (and what has no Vigil form) of a decoded request of ``signal``."""
    out = Translated()
    if signal == "traces":
        for rs in request.resource_spans:
            service, resource = _resource(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.events.extend(_span(span, service, resource, ss.scope.name))
        # Spans come as they end (children first): an execution starts before its steps.
        out.events.sort(key=lambda e: (e["ts"], _ORDER.get(e["kind"], 2)))
    elif signal == "metrics":
        for rm in request.resource_metrics:
            service, resource = _resource(rm.resource)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    _metric(metric, service, resource, out)
    elif signal == "logs":
        for rl in request.resource_logs:
            service, resource = _resource(rl.resource)
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    out.events.append(_log(record, service, resource, sl.scope.name))
    else:
        raise OtlpError(f"unknown OTLP signal {signal!r}")
    return out


def value_of(any_value: Any) -> Any:
    """An OTLP ``AnyValue`` as plain JSON-safe Python."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return attributes(any_value.kvlist_value.values)
    if kind == "bytes_value":
        return any_value.bytes_value.hex()
    value = getattr(any_value, kind)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _resource(resource: Any) -> tuple[str, dict[str, Any]]:
    attrs = attributes(resource.attributes)
    service = attrs.pop("service.name", None)
    kept = {k: v for k, v in attrs.items() if not k.startswith(_SDK_PREFIX)}
    return (_text(service) if service else "unknown_service"), kept


def _ms(nanos: int) -> int:
    return nanos // 1_000_000


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw and any(raw) else None


def _span(span: Any, service: str, resource: dict[str, Any], scope: str) -> list[dict[str, Any]]:
    from opentelemetry.proto.trace.v1 import trace_pb2

    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    duration = max(end - start, 0) / 1e6
    code = span.status.code
    status = {trace_pb2.Status.STATUS_CODE_OK: "ok", trace_pb2.Status.STATUS_CODE_ERROR: "error"}
    own = attributes(span.attributes)
    attrs: dict[str, Any] = {
        **own,
        "span_kind": trace_pb2.Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower(),
    }
    if scope:
        attrs["scope"] = scope
    if span.events:
        attrs["events"] = [
            {"name": e.name, "ts": _ms(e.time_unix_nano), **attributes(e.attributes)}
            for e in span.events
        ]
    if resource:
        attrs["resource"] = resource
    ok = code != trace_pb2.Status.STATUS_CODE_ERROR
    event: dict[str, Any] = {
        "kind": "span",
        "ts": _ms(start),
        "service": service,
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "value": duration,
        "ok": ok,
        "status": status.get(code, "unset"),
        "attrs": attrs,
    }
    if parent := _hex(span.parent_span_id):
        event["parent_id"] = parent
    if span.status.message:
        event["message"] = span.status.message
    workflow = own.get("vigil.workflow")
    if not workflow:
        return [event]
    base = {
        "service": service,
        "name": _text(workflow),
        "execution_id": _text(own.get("vigil.execution_id") or span.trace_id.hex()),
        "trace_id": span.trace_id.hex(),
    }
    step = own.get("vigil.step")
    if step:
        named = {**base, "step": _text(step)}
        return [
            event,
            {**named, "kind": "step.start", "ts": _ms(start)},
            {**named, "kind": "step.end", "ts": _ms(end), "value": duration, "ok": ok},
        ]
    begin: dict[str, Any] = {**base, "kind": "execution.start", "ts": _ms(start)}
    total = own.get("vigil.total_steps")
    if isinstance(total, int):
        begin["attrs"] = {"total_steps": total}
    finish = {
        **base,
        "kind": "execution.end",
        "ts": _ms(end),
        "value": duration,
        "ok": ok,
        "status": "success" if ok else "failed",
    }
    return [event, begin, finish]


def _tags(pairs: Iterable[Any]) -> dict[str, str]:
    return {k: _text(v) for k, v in attributes(pairs).items()}


def _metric(metric: Any, service: str, resource: dict[str, Any], out: Translated) -> None:
    from google.protobuf import json_format

    kind = metric.WhichOneof("data")
    base_attrs: dict[str, Any] = {"unit": metric.unit} if metric.unit else {}
    if resource:
        base_attrs["resource"] = resource

    def unmapped(reason: str, item: Any) -> None:
        body = orjson.dumps(
            {"metric": metric.name, "service": service, **json_format.MessageToDict(item)}
        )
        out.unmapped.append(Unmapped(body, reason))

    def sample(point: Any, value: float, attrs: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "kind": "metric",
            "ts": _ms(point.time_unix_nano),
            "service": service,
            "name": metric.name,
            "value": value,
        }
        tags = _tags(point.attributes)
        if tags:
            event["tags"] = tags
        if attrs:
            event["attrs"] = attrs
        return event

    if kind in ("gauge", "sum"):
        for point in getattr(metric, kind).data_points:
            which = point.WhichOneof("value")
            if which is None:
                unmapped(f"metric {metric.name!r}: a data point without a value", point)
                continue
            out.events.append(sample(point, float(getattr(point, which)), base_attrs))
    elif kind == "histogram":
        for point in metric.histogram.data_points:
            if not point.count or not point.HasField("sum"):
                unmapped(f"histogram {metric.name!r}: a point without a count and a sum", point)
                continue
            summary = {
                "count": point.count,
                "sum": point.sum,
                "bounds": list(point.explicit_bounds),
                "buckets": list(point.bucket_counts),
            }
            if point.HasField("min"):
                summary["min"] = point.min
            if point.HasField("max"):
                summary["max"] = point.max
            out.events.append(sample(point, point.sum / point.count, {**base_attrs, **summary}))
    else:
        what = (kind or "empty").replace("_", " ")
        unmapped(f"metric {metric.name!r}: OTLP {what} metrics are not mapped", metric)


def level_of(severity_number: int, severity_text: str) -> str:
    """A Vigil level from an OTLP severity (its number, else its text).

    >>> level_of(9, ""), level_of(17, ""), level_of(0, "WARN"), level_of(0, "")
    ('info', 'error', 'warning', 'info')
    """
    if severity_number > 0:
        for below, level in _LEVELS:
            if severity_number < below:
                return level
        return "critical"
    word = severity_text.strip().lower()
    word = _WORDS.get(word, word)
    return word if word in ("debug", "info", "warning", "error", "critical") else "info"


def _log(record: Any, service: str, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    at = record.time_unix_nano or record.observed_time_unix_nano
    body = value_of(record.body)
    event: dict[str, Any] = {
        "kind": "log",
        "ts": _ms(at),
        "service": service,
        "name": scope or "otel",
        "level": level_of(record.severity_number, record.severity_text),
        "message": _text(body) if body not in (None, "") else record.event_name or "(no body)",
    }
    if trace := _hex(record.trace_id):
        event["trace_id"] = trace
    if span := _hex(record.span_id):
        event["span_id"] = span
    attrs = attributes(record.attributes)
    if resource:
        attrs["resource"] = resource
    if attrs:
        event["attrs"] = attrs
    return event

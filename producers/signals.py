"""What every client offers at the call site: metrics, counters, errors, logs, raw events.

A call builds one small dict and appends it to the sender's queue; encoding, routing and
I/O happen later in the sender task. The call never blocks and, unless the client is
strict, never raises: a wrong call is counted, logged once per cause and dropped.
"""

from __future__ import annotations

import collections
import logging
import math
import random
import time
import traceback
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from producers.events import (
    LEVELS,
    MIN_TS_MS,
    InvalidEvent,
    check_text,
    validate,
)
from producers.guard import guarded
from producers.outcomes import OutcomeHooks
from producers.privacy import Privacy
from producers.sender import METRIC, Sender
from producers.settings import ProducerSettings, SettingsError
from producers.tracing import Span, current_span
from producers.usage import UsageHooks
from producers.workflows import current_execution

log = logging.getLogger("producers")

_COUNTER = {"counter": True}
#: Kinds sampled event by event; metrics are sampled before they are built, workflow
#: events by execution and spans by trace.
_SAMPLED_BY_EVENT = frozenset({"log", "error"})
#: Distinct causes of dropped calls that get their own log line.
MAX_LOGGED_CAUSES = 100


class Signals(UsageHooks, OutcomeHooks):
    """The call-site half of a client; :class:`producers.Client` adds the lifecycle."""

    def __init__(
        self,
        settings: ProducerSettings | None = None,
        *,
        bootstrap: str | None = None,
        strict: bool | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings = settings or ProducerSettings()
        self.strict = settings.strict if strict is None else strict
        self.enabled = settings.enabled
        #: Every event the SDK builds carries it; the sender relies on that (no lookup).
        self._service = settings.service
        self.privacy = Privacy(settings.privacy_mode, settings.privacy_secret)
        self._clock = clock
        self._random = rng
        self._rates = dict(settings.sampling)
        self._metric_rate = self._rates.get("metric", 1.0)
        self._counts = collections.Counter[str]()
        self._causes: set[str] = set()
        bootstrap = bootstrap or settings.kafka_bootstrap
        self._sender = Sender(settings, bootstrap, on_invalid=self._dropped_later, clock=clock)
        self._put = self._sender.put
        if not bootstrap:
            reason = "no Kafka bootstrap: set VIGIL_KAFKA_BOOTSTRAP; events are not sent"
            if self.strict:
                raise SettingsError(reason)
            log.error("vigil: %s", reason)
            self._sender.last_error = reason
            self.enabled = False

    # -- runtime controls ------------------------------------------------------------
    def enable(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        """Every call becomes a counted no-op until :meth:`enable`."""
        self.enabled = False

    def set_sampling(self, kind: str, rate: float) -> None:
        """Keep a fraction ``rate`` of ``kind`` events (``workflow`` and ``span`` by id)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sampling rate must be between 0 and 1, got {rate}")
        self._rates[kind] = rate
        self._metric_rate = self._rates.get("metric", 1.0)

    def stats(self) -> dict[str, Any]:
        """queued, sent, dropped, failed, retried, invalid, sampled_out and the last error."""
        out = self._sender.stats()
        for key in ("invalid", "sampled_out", "disabled", "internal_errors", "opted_out"):
            out[key] = self._counts[key]
        return out

    # -- signals ------------------------------------------------------------------------
    def metric(
        self,
        name: str,
        value: float,
        tags: Mapping[str, str] | None = None,
        *,
        attrs: Mapping[str, Any] | None = None,
        ok: bool | None = None,
        ts: int | None = None,
        unit: str | None = None,
        category: str | None = None,
    ) -> bool:
        """Record one sample of series ``name`` (+ ``tags``); True when it was queued.
        ``unit`` (ms, bytes, %) and ``category`` (performance, business, ...) describe the
        metric; history lists them with it."""
        try:
            if unit is not None or category is not None:
                described = {"unit": unit, "category": category}
                attrs = {**(attrs or {}), **{k: str(v)[:64] for k, v in described.items() if v}}
            if not self.enabled:
                self._counts["disabled"] += 1
                return False
            if self._metric_rate < 1.0 and not self._keep("metric"):
                return False
            if type(value) is not float:
                if type(value) is not int:
                    raise InvalidEvent(
                        f"metric {name!r:.64}: value must be a number, got {type(value).__name__}"
                    )
                value = float(value)
            if not math.isfinite(value):
                raise InvalidEvent(f"metric {name!r:.64}: value must be finite, got {value}")
            if type(name) is not str or not 0 < len(name) <= 256:
                raise InvalidEvent("metric name must be a non-empty string (<= 256 chars)")
            ts = int(self._clock() * 1000) if ts is None else self._ts(ts)
            if tags and type(tags) is not dict:
                tags = self._tag_set(tags)
            # Tag names and values are checked by the sender, once per distinct set.
            if not (attrs or self.strict):
                # The hottest call of the SDK: a sample of a series the sender encodes from
                # a cached per-series prefix (see Sender._encode); tags are frozen now.
                items = tuple(tags.items()) if tags else ()
                return self._put((METRIC, name, items, ts, value, None if ok is None else bool(ok)))
            event: dict[str, Any] = {
                "kind": "metric",
                "service": self._service,
                "ts": ts,
                "name": name,
                "value": value,
            }
            if tags:
                event["tags"] = dict(tags)
            if attrs:
                event["attrs"] = self._attrs(attrs)
                if self._opted_out and self._names_opted_out(event["attrs"]):
                    self._counts["opted_out"] += 1
                    return False
            if ok is not None:
                event["ok"] = bool(ok)
            return self._emit(event) if self.strict else self._put(event)
        except InvalidEvent as exc:
            return self._dropped(exc.reason)
        except Exception as exc:  # analytics must never break the host
            return self._internal(exc)

    def counter(self, name: str, inc: float = 1.0, tags: Mapping[str, str] | None = None) -> bool:
        """Count ``inc`` occurrences: a metric whose window sum is the count."""
        return self.metric(name, inc, tags, attrs=_COUNTER)

    @guarded
    def error(
        self,
        exc: BaseException | str,
        context: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        execution_id: str | None = None,
        severity: str | None = None,
        impact: str | None = None,
        recovery_attempted: bool | None = None,
        recovered: bool | None = None,
    ) -> bool:
        """Record an exception (or an error message) with sanitized ``context``; how bad it
        was (``severity``: warning, error, critical; ``impact``: low, medium, high), and
        whether a recovery was tried and worked."""
        if isinstance(exc, BaseException):
            kind_name = name or type(exc).__name__
            message = self.privacy.message(exc)
            attrs: dict[str, Any] = {
                "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                "stack": _stack(exc),
            }
        else:
            kind_name, message, attrs = name or "Error", self.privacy.message(exc), {}
        if context:
            attrs["context"] = self.privacy.sanitize(dict(context))
        for key, value in (("severity", severity), ("impact", impact)):
            if value is not None:
                attrs[key] = self.privacy.text(value, 32)
        if recovery_attempted is not None or recovered is not None:
            attrs["recovery_attempted"] = bool(recovery_attempted or recovered)
            attrs["recovered"] = bool(recovered)
        event = {"kind": "error", "service": self._service, "ts": self._ts(None)}
        event["name"] = kind_name[:256]
        event["message"] = message
        event["attrs"] = attrs
        if tags:
            event["tags"] = self._tag_set(tags)
        self._link(event)
        if execution_id is not None:
            event["execution_id"] = check_text("execution_id", execution_id, required=True)
        return self._emit(event)

    @guarded
    def log(
        self,
        level: str,
        message: str,
        *,
        name: str = "log",
        trace_id: str | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> bool:
        """A log line; it joins the current span's trace unless ``trace_id`` is given."""
        if level not in LEVELS:
            raise InvalidEvent(f"log level {level!r:.32} is not one of {sorted(LEVELS)}")
        event = {"kind": "log", "service": self._service, "ts": self._ts(None)}
        event["name"], event["level"] = name, level
        event["message"] = self.privacy.message(message)
        if attrs:
            event["attrs"] = self._attrs(attrs)
        check_text("name", name, required=True)
        self._link(event)
        if trace_id is not None:
            event["trace_id"] = check_text("trace_id", trace_id, required=True)
        return self._emit(event)

    def span(
        self,
        name: str,
        *,
        attrs: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        kind: str = "internal",
        traceparent: str | None = None,
    ) -> Span:
        """A context manager that times a block as one span of the current trace (of
        ``traceparent``'s trace when there is no current span: a request from another
        service); ``kind`` as OpenTelemetry's."""
        return Span(
            self, name, attrs=attrs, tags=tags, trace_id=trace_id, kind=kind,
            traceparent=traceparent,
        )  # fmt: skip

    @guarded
    def publish(self, event: Mapping[str, Any]) -> bool:
        """Queue a ready-made schema v1 event; it is validated before it is sent."""
        if not self.enabled:
            self._counts["disabled"] += 1
            return False
        if self.strict:
            validate(event, now_ms=self._ts(None))
        return self._put(("event", dict(event)))

    def publish_line(self, key: str, line: bytes) -> bool:
        """Queue already encoded bytes routed by ``key``, sent as they are (no checks)."""
        return self._put(("line", key, bytes(line)))

    # -- shared by every signal -----------------------------------------------------------
    def _emit(self, event: dict[str, Any]) -> bool:
        if not self.enabled:
            self._counts["disabled"] += 1
            return False
        if self._rates and event["kind"] in _SAMPLED_BY_EVENT and not self._keep(event["kind"]):
            return False
        if self._opted_out:
            attrs = event.get("attrs")
            if self._names_opted_out(attrs) or self._names_opted_out(
                attrs.get("context") if isinstance(attrs, dict) else None
            ):
                self._counts["opted_out"] += 1
                return False
        if self.strict:
            # The whole schema, on a completed copy: the same check the worker applies.
            validate(self._sender.complete(dict(event)), now_ms=self._ts(None))
        return self._put(event)

    @guarded
    def _emit_span(self, span: Span, duration_ms: float, error: BaseException | None) -> None:
        if not span.sampled:
            return
        event: dict[str, Any] = {
            "kind": "span",
            "service": self._service,
            "ts": span.started_ms,
            "name": span.name,
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "value": duration_ms,
        }
        status = span.status or ("ok" if error is None else "error")
        event["ok"], event["status"] = status == "ok", status
        if span.parent_id:
            event["parent_id"] = span.parent_id
        if error is not None:
            event["message"] = self.privacy.message(error)
        elif span.status_message:
            event["message"] = self.privacy.message(span.status_message)
        attrs = self._attrs(span.attrs) if span.attrs else {}
        if span.kind != "internal":
            attrs["span_kind"] = span.kind
        if span.events:
            attrs["events"] = span.events
        if attrs:
            event["attrs"] = attrs
        if span.tags:
            event["tags"] = self._tag_set(span.tags)
        check_text("name", span.name, required=True)
        execution = current_execution()
        if execution is not None:
            event["execution_id"] = execution.execution_id
        self._emit(event)

    def _ts(self, ts: int | None) -> int:
        if ts is None:
            return int(self._clock() * 1000)
        if type(ts) is not int or ts < MIN_TS_MS:
            raise InvalidEvent(f"ts must be integer epoch milliseconds, got {ts!r:.40}")
        return ts

    def _tag_set(self, tags: Any) -> dict[str, str]:
        if not isinstance(tags, Mapping):
            raise InvalidEvent(f"tags must be a mapping, got {type(tags).__name__}")
        return dict(tags)

    def _attrs(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        if type(attrs) is dict:  # the usual case, without the ABC check's cost
            return dict(attrs)
        if not isinstance(attrs, Mapping):
            raise InvalidEvent(f"attrs must be a mapping, got {type(attrs).__name__}")
        return dict(attrs)

    def _link(self, event: dict[str, Any]) -> None:
        """Tie an event to the current span and execution, when there are any."""
        span = current_span()
        if span is not None:
            event["trace_id"] = span.trace_id
            event["span_id"] = span.span_id
        execution = current_execution()
        if execution is not None:
            event["execution_id"] = execution.execution_id

    def _keep(self, kind: str) -> bool:
        rate = self._rates.get(kind, 1.0)
        if rate >= 1.0 or self._random() < rate:
            return True
        self._counts["sampled_out"] += 1
        return False

    def _keep_id(self, kind: str, ident: str) -> bool:
        """Sampling by id, so every event of one execution or trace shares the decision,
        in every process."""
        rate = self._rates.get(kind, 1.0)
        if rate >= 1.0 or zlib.crc32(ident.encode()) < rate * 2**32:
            return True
        self._counts["sampled_out"] += 1
        return False

    def _dropped(self, reason: str) -> bool:
        if self.strict:
            raise InvalidEvent(reason)
        self._dropped_later(reason)
        return False

    def _dropped_later(self, reason: str) -> None:
        self._counts["invalid"] += 1
        if reason not in self._causes and len(self._causes) < MAX_LOGGED_CAUSES:
            self._causes.add(reason)
            log.warning("vigil: dropped an invalid event: %s", reason)

    def _internal(self, exc: Exception) -> bool:
        if self.strict:
            raise exc
        self._counts["internal_errors"] += 1
        cause = f"internal:{type(exc).__name__}"
        if cause not in self._causes and len(self._causes) < MAX_LOGGED_CAUSES:
            self._causes.add(cause)
            log.error("vigil: an SDK call failed and was skipped", exc_info=exc)
        return False


def _stack(exc: BaseException, limit: int = 8) -> list[str]:
    """The innermost frames as ``file:line in function``: enough to find the code."""
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]

"""Spans: timed blocks that nest into traces, as ``with`` or ``async with`` blocks.

The current span lives in a context variable, so nesting follows the code (threads and
asyncio tasks each see their own). A span is sampled with its whole trace: the decision
is made once, from the trace id, at the root. The event is sent when the block ends,
with the duration in ms, ``ok`` and, on an exception, its message; the exception itself
propagates unchanged.

A span has a kind (``internal``, ``server``, ``client``, ``producer`` or ``consumer``, as
OpenTelemetry's), a status (``ok`` or ``error`` from the block's outcome, or set with
:meth:`Span.set_status`) and span events (:meth:`Span.add_event`: a log line attached to
the span). A trace crosses services with W3C Trace Context: :func:`inject` writes the
current span's ``traceparent`` header, and ``vigil.span(name, traceparent=...)`` in the
next service continues that trace (an unreadable header starts a new one).

Example::

    with vigil.span("checkout", kind="server") as root:
        with vigil.span("db.query", kind="client", attrs={"table": "orders"}) as q:
            q.add_event("cache miss", {"key": "o-17"})
        headers = inject({})            # {"traceparent": "00-<trace>-<span>-01"}
"""

from __future__ import annotations

import contextvars
import os
import re
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producers.signals import Signals

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("vigil_span", default=None)


def current_span() -> Span | None:
    """The innermost open span of this thread or task, if any."""
    return _current.get()


def new_id(n_bytes: int) -> str:
    return os.urandom(n_bytes).hex()


#: OpenTelemetry's span kinds.
KINDS = ("internal", "server", "client", "producer", "consumer")
#: Span events kept per span at most (more are counted in ``dropped_events``).
MAX_EVENTS = 32
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(header: str | None) -> tuple[str, str, bool] | None:
    """``(trace id, parent span id, sampled)`` of a W3C ``traceparent`` header (version
    00); None for a missing or unreadable one, or all-zero ids.

    >>> parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', True)
    >>> parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
    True
    """
    match = _TRACEPARENT.match((header or "").strip().lower())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    return match[1], match[2], bool(int(match[3], 16) & 1)


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Set ``traceparent`` in ``headers`` from the current span (unchanged when there is
    none, or its trace id is not W3C's 32 hex digits); returns ``headers``."""
    span = _current.get()
    header = span.traceparent if span is not None else None
    if header is not None:
        headers["traceparent"] = header
    return headers


def restore(var: contextvars.ContextVar[Any], token: contextvars.Token[Any] | None) -> None:
    """Undo ``var.set()``; a block exited in another context than it was entered in
    (a generator, a callback) just clears the variable."""
    if token is None:
        return
    try:
        var.reset(token)
    except ValueError:
        var.set(None)


class AlsoAsync:
    """``async with`` for a context manager whose enter and exit never await."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        return self.__enter__()  # type: ignore[attr-defined]

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)  # type: ignore[attr-defined]


class Span(AlsoAsync):
    __slots__ = (
        "_remote",
        "_t0",
        "_token",
        "attrs",
        "client",
        "events",
        "kind",
        "name",
        "parent_id",
        "sampled",
        "span_id",
        "started_ms",
        "status",
        "status_message",
        "tags",
        "trace_id",
    )

    def __init__(
        self,
        client: Signals,
        name: str,
        *,
        attrs: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        trace_id: str | None = None,
        kind: str = "internal",
        traceparent: str | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.attrs = dict(attrs) if attrs else {}
        self.tags = tags
        self.trace_id = trace_id
        self.kind = kind if kind in KINDS else "internal"
        self.events: list[dict[str, Any]] = []
        self.status: str | None = None
        self.status_message: str | None = None
        self._remote = parse_traceparent(traceparent)
        self.span_id = ""
        self.parent_id: str | None = None
        self.sampled = True
        self.started_ms = 0
        self._t0 = 0.0
        self._token: contextvars.Token[Span | None] | None = None

    def set_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value

    def set_status(self, status: str, message: str | None = None) -> None:
        """``ok`` or ``error`` whatever the block's outcome (an ``error`` span is not ok),
        with an optional message."""
        self.status = "error" if status == "error" else "ok"
        self.status_message = message

    def add_event(self, name: str, attrs: Mapping[str, Any] | None = None) -> None:
        """A span event: something that happened at this moment within the span."""
        if len(self.events) >= MAX_EVENTS:
            self.attrs["dropped_events"] = self.attrs.get("dropped_events", 0) + 1
            return
        at = int(self.client._clock() * 1000)
        self.events.append({"name": str(name), "ts": at, **dict(attrs or {})})

    @property
    def traceparent(self) -> str | None:
        """This span as a W3C ``traceparent`` header (None when its trace id is not 32
        hex digits, e.g. one given by hand)."""
        header = f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"
        return header if _TRACEPARENT.match(header) else None

    def __enter__(self) -> Span:
        parent = _current.get()
        remote = self._remote
        if remote is not None and parent is None:  # continues a trace of another service
            self.trace_id, self.parent_id, self.sampled = remote
        elif parent is not None and self.trace_id in (None, parent.trace_id):
            self.trace_id = parent.trace_id
            self.parent_id = parent.span_id
            self.sampled = parent.sampled
        else:
            self.trace_id = self.trace_id or new_id(16)
            self.sampled = self.client._keep_id("span", self.trace_id)
        self.span_id = new_id(8)
        self.started_ms = int(self.client._clock() * 1000)
        self._token = _current.set(self)
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        duration_ms = (time.perf_counter() - self._t0) * 1000
        restore(_current, self._token)
        error = exc if isinstance(exc, Exception) else None
        self.client._emit_span(self, duration_ms, error)

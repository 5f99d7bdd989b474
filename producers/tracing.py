"""Spans: timed blocks that nest into traces, as ``with`` or ``async with`` blocks.

The current span lives in a context variable, so nesting follows the code (threads and
asyncio tasks each see their own). A span is sampled with its whole trace: the decision
is made once, from the trace id, at the root. The event is sent when the block ends,
with the duration in ms, ``ok`` and, on an exception, its message; the exception itself
propagates unchanged.

Example::

    with vigil.span("checkout") as root:
        with vigil.span("db.query", attrs={"table": "orders"}):
            ...
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producers.signals import Signals

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("vigil_span", default=None)


def current_span() -> Span | None:
    """The innermost open span of this thread or task, if any."""
    return _current.get()


def new_id(n_bytes: int) -> str:
    return os.urandom(n_bytes).hex()


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
        "_t0",
        "_token",
        "attrs",
        "client",
        "name",
        "parent_id",
        "sampled",
        "span_id",
        "started_ms",
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
    ) -> None:
        self.client = client
        self.name = name
        self.attrs = dict(attrs) if attrs else {}
        self.tags = tags
        self.trace_id = trace_id
        self.span_id = ""
        self.parent_id: str | None = None
        self.sampled = True
        self.started_ms = 0
        self._t0 = 0.0
        self._token: contextvars.Token[Span | None] | None = None

    def set_attr(self, key: str, value: Any) -> None:
        self.attrs[key] = value

    def __enter__(self) -> Span:
        parent = _current.get()
        if parent is not None and self.trace_id in (None, parent.trace_id):
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

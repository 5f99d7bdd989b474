"""Feature usage: who used what, for how long, on how much data, with which parameters;
the session it belongs to; and consent.

``feature_used(feature, ...)`` records one use as the ``feature_used{feature=...}``
metric (a 1 per use), with in its attributes the user and session (ids hashed as
``producers.privacy`` says), ``duration_ms``, ``size`` (bytes, rows, items: what the
caller measures) and ``params``, the parameters that shaped the call, with ``combo``, one
text of their names and values in name order, so that history can count how often each
combination is used and how it fares.

Sessions. A call without a session takes the one set for the block by
``producers.session(id)`` (a web request's, for one), else an automatic one: a random id
that the client keeps until no use was recorded for ``VIGIL_SESSION_IDLE_S`` (30 minutes
by default), then replaces.

Consent. ``opt_out(user)`` makes the client record nothing more about that user: a use
or any event whose attributes name the user (``user``, ``user_id``, ...) is dropped and
counted (``stats()["opted_out"]``); ``opt_in(user)`` undoes it. Consent lives in the
client: an application that stores it calls ``opt_out`` for each such user at start.
``vigil forget USER`` deletes what was recorded before.

>>> combo({"format": "csv", "gzip": True, "rows": 10})
'format=csv,gzip=true,rows=10'
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from producers.events import InvalidEvent
from producers.guard import guarded
from producers.privacy import USER_KEY

if TYPE_CHECKING:
    from producers.signals import Signals

_session: contextvars.ContextVar[str | None] = contextvars.ContextVar("vigil_session", default=None)


@contextlib.contextmanager
def session(session_id: Any) -> Iterator[None]:
    """Every use recorded in this block (thread or task) belongs to ``session_id``."""
    token = _session.set(str(session_id))
    try:
        yield
    finally:
        _session.reset(token)


def combo(params: Mapping[str, Any]) -> str:
    """The parameters as one text: ``name=value`` in name order, values as JSON scalars."""
    parts = []
    for key in sorted(params):
        value = params[key]
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={text}")
    return ",".join(parts)


def _size(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent(f"size must be a finite number, got {value!r:.40}")
    if value < 0:
        raise InvalidEvent(f"size must not be negative, got {value}")
    return float(value)


class UsageHooks:
    """Usage, sessions and consent; mixed into the clients."""

    _opted_out: frozenset[str] = frozenset()
    _auto_session: tuple[str, float] | None = None

    # -- consent ---------------------------------------------------------------------
    def _user_key(self, user: Any) -> str:
        host: Signals = self  # type: ignore[assignment]  # mixed into the clients
        return host.privacy.user(user) or ""

    def opt_out(self, user: Any) -> None:
        """Record nothing more about ``user`` (the id as the application knows it)."""
        self._opted_out = self._opted_out | {self._user_key(user)}

    def opt_in(self, user: Any) -> None:
        self._opted_out = self._opted_out - {self._user_key(user)}

    def consents(self, user: Any) -> bool:
        """False for a user who opted out."""
        return not self._opted_out or self._user_key(user) not in self._opted_out

    def _names_opted_out(self, attrs: Any) -> bool:
        """Whether ``attrs`` name a user who opted out (by id, or by its hash once
        sanitized)."""
        if not self._opted_out or not isinstance(attrs, Mapping):
            return False
        opted = self._opted_out
        return any(
            USER_KEY.match(str(key))
            and isinstance(value, str | int)
            and (value in opted or self._user_key(value) in opted)
            for key, value in attrs.items()
        )

    # -- sessions --------------------------------------------------------------------
    def session_id(self) -> str:
        """The current session: the block's (``producers.session``), else automatic."""
        given = _session.get()
        if given is not None:
            return given
        host: Signals = self  # type: ignore[assignment]
        now = host._clock()
        current = self._auto_session
        if current is None or now - current[1] > host.settings.session_idle_s:
            current = (uuid.uuid4().hex, now)
        self._auto_session = (current[0], now)
        return current[0]

    # -- usage -----------------------------------------------------------------------
    @guarded
    def feature_used(
        self,
        feature: str,
        *,
        user: Any = None,
        session: Any = None,
        duration_ms: float | None = None,
        size: float | None = None,
        params: Mapping[str, Any] | None = None,
        ok: bool = True,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> bool:
        """Record one use of ``feature`` (see the module); False when nothing was recorded
        (the user opted out, the client is off, or the call was wrong)."""
        host: Signals = self  # type: ignore[assignment]
        if user is not None and not self.consents(user):
            host._counts["opted_out"] += 1
            return False
        duration = None if duration_ms is None else _size(duration_ms)
        amount = None if size is None else _size(size)
        extra = self._use_attrs(dict(attrs or {}), user, session, duration, amount, params)
        tags = {"feature": str(feature)}
        return host.metric("feature_used", 1.0, tags, attrs=extra, ok=ok, ts=ts)

    def _use_attrs(
        self,
        extra: dict[str, Any],
        user: Any,
        session: Any,
        duration_ms: float | None,
        size: float | None,
        params: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """A use's attributes from checked values (an automatic session is a random id:
        nothing to hash)."""
        host: Signals = self  # type: ignore[assignment]
        if user is not None:
            extra["user"] = host.privacy.user(user)
        extra["session"] = self.session_id() if session is None else host.privacy.session(session)
        if duration_ms is not None:
            extra["duration_ms"] = duration_ms
        if size is not None:
            extra["size"] = size
        if params:
            clean = host.privacy.sanitize(dict(params))
            extra["params"] = clean
            extra["combo"] = host.privacy.text(combo(clean), 512)
        return extra

    def _used(self, tags: dict[str, str], attrs: dict[str, Any], ok: bool) -> bool:
        """Queue a use whose tags and attributes the SDK itself made (the decorator's
        path: what ``metric`` would check is known good)."""
        host: Signals = self  # type: ignore[assignment]
        if not host.enabled:
            host._counts["disabled"] += 1
            return False
        if host._metric_rate < 1.0 and not host._keep("metric"):
            return False
        event = {
            "kind": "metric", "service": host._service, "ts": int(host._clock() * 1000),
            "name": "feature_used", "value": 1.0, "tags": tags, "attrs": attrs, "ok": ok,
        }  # fmt: skip
        return host._emit(event) if host.strict else host._put(event)

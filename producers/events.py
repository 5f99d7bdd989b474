"""Event schema v1: one JSON object per event.

Fields (all but ``kind``, ``ts``, ``service`` and ``name`` are optional):

| field          | type            | meaning                                                   |
| -------------- | --------------- | --------------------------------------------------------- |
| ``v``          | int             | schema version, 1                                         |
| ``kind``       | str             | one of :data:`KINDS`                                      |
| ``ts``         | int             | event time, epoch milliseconds                            |
| ``service``    | str             | the publishing service                                    |
| ``name``       | str             | metric name, workflow name, error type, span or log name  |
| ``value``      | number          | the measurement: metric value, or a duration in ms        |
| ``ok``         | bool            | outcome of a step, execution, recovery or span            |
| ``status``     | str             | outcome in words: success, failed, cancelled, ...         |
| ``execution_id``, ``step``, ``trace_id``, ``span_id``, ``parent_id`` | str | ids |
| ``level``      | str             | log level: debug, info, warning, error, critical          |
| ``message``    | str             | log line or error message                                 |
| ``tags``       | {str: str}      | dimensions that are part of the series key                |
| ``attrs``      | object          | anything else; stored, not indexed                        |

Each event belongs to one series (:func:`series_key`) and travels on the partition of
its routing key (:func:`routing_key`): every event of one workflow, whatever its step,
shares a partition, so a worker sees whole executions.

>>> ev = validate({"kind": "metric", "ts": 1_700_000_000_000, "service": "api",
...                "name": "latency_ms", "value": 12.5, "tags": {"route": "/a"}},
...               now_ms=1_700_000_000_000)
>>> ev["series"]
'metric|api|latency_ms|route=/a'
>>> validate({"kind": "metric"}, now_ms=0)
Traceback (most recent call last):
...
producers.events.InvalidEvent: missing field 'ts'
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
import orjson
from aiokafka.partitioner import murmur2

from producers.series import KEYS_KEPT, compose, key_of

SCHEMA_VERSION = 1

WORKFLOW_KINDS = frozenset(
    {"execution.start", "step.start", "step.end", "execution.end", "recovery"}
)
KINDS = WORKFLOW_KINDS | {"metric", "error", "log", "span"}
LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})

#: Event times before 2000-01-01 are refused as clock or unit errors (seconds sent as ms).
MIN_TS_MS = 946_684_800_000
#: How far in the future of the worker's clock an event may be.
MAX_FUTURE_MS = 24 * 3600 * 1000
MAX_EVENT_BYTES = 64 * 1024
MAX_TAGS = 16

_ID_FIELDS = ("execution_id", "step", "trace_id", "span_id", "parent_id")
_TEXT_LIMITS = {
    "service": 128,
    "name": 256,
    "status": 32,
    "execution_id": 128,
    "step": 256,
    "trace_id": 128,
    "span_id": 128,
    "parent_id": 128,
    "level": 16,
    "message": 8192,
}
_FIELDS = frozenset(
    {"v", "kind", "ts", "service", "name", "value", "ok", "attrs", "tags", *_TEXT_LIMITS}
)
_OPTIONAL_TEXT = frozenset({"status", "level", "message", *_ID_FIELDS})
_NO_OPTIONAL_TEXT = dict.fromkeys(sorted(_OPTIONAL_TEXT))
_REQUIRED_BY_KIND: dict[str, frozenset[str]] = {
    "execution.start": frozenset({"execution_id"}),
    "execution.end": frozenset({"execution_id"}),
    "step.start": frozenset({"execution_id", "step"}),
    "step.end": frozenset({"execution_id", "step"}),
    "recovery": frozenset({"execution_id"}),
    "metric": frozenset({"value"}),
    "span": frozenset({"trace_id", "span_id"}),
    "log": frozenset({"message"}),
    "error": frozenset(),
}


class InvalidEvent(ValueError):
    """An event that breaks schema v1; ``reason`` says which rule and which value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(event: dict[str, Any], key: str, *, required: bool) -> str | None:
    return check_text(key, event.get(key), required=required)


def check_text(key: str, value: Any, *, required: bool) -> str | None:
    """``value`` if it is a valid text field ``key``; raises :class:`InvalidEvent`."""
    if value is None:
        if required:
            raise InvalidEvent(f"missing field {key!r}")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"field {key!r} must be a string, got {type(value).__name__}")
    if required and not value:
        raise InvalidEvent(f"field {key!r} must not be empty")
    if len(value) > _TEXT_LIMITS[key]:
        raise InvalidEvent(f"field {key!r} is longer than {_TEXT_LIMITS[key]} characters")
    return value


def check_tags(value: Any, max_tags: int = MAX_TAGS) -> dict[str, str]:
    """``value`` (or ``{}`` for None) if it is a valid tag set; raises :class:`InvalidEvent`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"field 'tags' must be an object, got {type(value).__name__}")
    if len(value) > max_tags:
        raise InvalidEvent(f"field 'tags' has {len(value)} entries, at most {max_tags}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidEvent(f"tag names must be strings, got {type(k).__name__}")
        if not isinstance(v, str) or len(k) > 64 or len(v) > 256:
            raise InvalidEvent(f"tag {k[:64]!r} must map a short name to a string (<= 256)")
        if "|" in k or "=" in k or "," in k:
            raise InvalidEvent(f"tag name {k[:64]!r} must not contain '|', '=' or ','")
    return value


def validate(event: Any, *, now_ms: int) -> dict[str, Any]:
    """Check ``event`` (a decoded JSON value) and return it normalized.

    The result has every schema field (``None`` where absent) plus ``series``.
    Raises :class:`InvalidEvent` with the first broken rule.
    """
    # A well-formed event takes the fast path (the same as :func:`decode`'s); anything
    # unusual goes through the full rules below, which also name what is wrong.
    if type(event) is dict:
        try:
            ev = msgspec.convert(event, Event)
        except msgspec.ValidationError:
            return _validate(event, now_ms=now_ms)
        series = _checked(ev, now_ms)
        if series is not None:
            out = msgspec.structs.asdict(ev)
            del out["v"]
            out["tags"] = ev.tags or {}
            out["attrs"] = ev.attrs or {}
            out["series"] = series
            return out
    return _validate(event, now_ms=now_ms)


def _validate(event: Any, *, now_ms: int) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidEvent(f"an event must be a JSON object, got {type(event).__name__}")
    unknown = event.keys() - _FIELDS
    if unknown:
        raise InvalidEvent(f"unknown field {sorted(unknown)[0][:64]!r}")
    version = event.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise InvalidEvent(f"schema version {version!r} is not supported (expected 1)")
    if "kind" not in event:
        raise InvalidEvent("missing field 'kind'")
    kind = event["kind"]
    if kind not in KINDS:
        raise InvalidEvent(f"unknown kind {str(kind)[:64]!r}; expected one of {sorted(KINDS)}")
    if "ts" not in event:
        raise InvalidEvent("missing field 'ts'")
    ts = event["ts"]
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise InvalidEvent(f"field 'ts' must be integer epoch milliseconds, got {ts!r:.40}")
    if ts < MIN_TS_MS:
        raise InvalidEvent(f"field 'ts' {ts} is before 2000-01-01: seconds instead of ms?")
    if ts > now_ms + MAX_FUTURE_MS:
        raise InvalidEvent(f"field 'ts' {ts} is more than 24 h in the future")
    value = event.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidEvent(f"field 'value' must be a number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidEvent(f"field 'value' must be finite, got {value}")
    ok = event.get("ok")
    if ok is not None and not isinstance(ok, bool):
        raise InvalidEvent(f"field 'ok' must be true or false, got {ok!r:.40}")
    attrs = event.get("attrs")
    if attrs is not None and not isinstance(attrs, dict):
        raise InvalidEvent(f"field 'attrs' must be an object, got {type(attrs).__name__}")
    out: dict[str, Any] = {
        "kind": kind,
        "ts": ts,
        "service": _text(event, "service", required=True),
        "name": _text(event, "name", required=True),
        "value": float(value) if value is not None else None,
        "ok": ok,
        "tags": check_tags(event.get("tags")),
        "attrs": attrs if attrs is not None else {},
        **_NO_OPTIONAL_TEXT,
    }
    required = _REQUIRED_BY_KIND[kind]
    # Only the text fields present (a hot path: most events carry one or two of them).
    for key in _OPTIONAL_TEXT.intersection(event) | required.intersection(_OPTIONAL_TEXT):
        out[key] = _text(event, key, required=key in required)
    if "value" in required and value is None:
        raise InvalidEvent(f"a {kind} event needs a 'value'")
    if out["level"] is not None and out["level"] not in LEVELS:
        raise InvalidEvent(f"field 'level' {out['level']!r} is not one of {sorted(LEVELS)}")
    out["series"] = series_key(out)
    return out


def series_key(event: dict[str, Any]) -> str:
    """``kind|service|name[|step=...][|tag=value,...]``: the unit of windows and detection."""
    tags = event.get("tags")
    parts = (event["kind"], event["service"], event["name"], event.get("step"))
    return key_of(*parts, *tags.items()) if tags else key_of(*parts)


def routing_key(event: dict[str, Any]) -> str:
    """The key that picks the partition: the workflow for workflow events, else the series.

    Every series maps to exactly one routing key, so a series never spans partitions.
    """
    kind = event.get("kind")
    if kind in WORKFLOW_KINDS:
        return route(kind, event.get("service"), event.get("name"), "")
    return series_key(event)


def route(kind: Any, service: Any, name: Any, series: str) -> str:
    """:func:`routing_key` from an event's fields and its series key (as the worker holds
    them, already decoded)."""
    return f"workflow|{service}|{name}" if kind in WORKFLOW_KINDS else series


@functools.lru_cache(maxsize=65_536)
def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so any Kafka client agrees on the partition."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


# -- the worker's decoder -------------------------------------------------------------
def _text_type(field: str, *, min_length: int = 0) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=_TEXT_LIMITS[field])]


class Event(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """A decoded schema v1 event, as the worker holds it (``None``: absent).

    Not tracked by the cyclic garbage collector (``gc=False``): an event holds strings,
    numbers and decoded JSON, never a reference back to itself, and the collector's
    passes over a batch's young events cost the processor 0.11 µs an event at 1,000
    series (0.01 untracked; ``bench.worker_core``'s collector stage, same session)."""

    kind: Literal[tuple(sorted(KINDS))]  # type: ignore[valid-type]
    ts: int
    service: _text_type("service", min_length=1)  # type: ignore[valid-type]
    name: _text_type("name", min_length=1)  # type: ignore[valid-type]
    v: Literal[1] = 1
    value: float | None = None
    ok: bool | None = None
    status: _text_type("status") | None = None  # type: ignore[valid-type]
    execution_id: _text_type("execution_id") | None = None  # type: ignore[valid-type]
    step: _text_type("step") | None = None  # type: ignore[valid-type]
    trace_id: _text_type("trace_id") | None = None  # type: ignore[valid-type]
    span_id: _text_type("span_id") | None = None  # type: ignore[valid-type]
    parent_id: _text_type("parent_id") | None = None  # type: ignore[valid-type]
    level: Literal[tuple(sorted(LEVELS))] | None = None  # type: ignore[valid-type]
    message: _text_type("message") | None = None  # type: ignore[valid-type]
    tags: dict[str, str] | None = None
    attrs: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(Event)
_TOO_DEEP = "not valid JSON: nested deeper than the decoder allows"
_EVENT_FIELDS = Event.__struct_fields__


def decode(line: bytes, *, now_ms: int) -> tuple[Event, str]:
    """One JSON line as a checked :class:`Event` and its series key.

    The same rules as :func:`validate`: one C pass checks types and sizes, a few lines
    here the rest; whatever that path refuses goes through the full rules, which accept
    the odd valid event (``"v": true``) and name what is wrong with a bad one (raising
    :class:`InvalidEvent`).
    """
    try:
        ev = _DECODER.decode(line)
    except RecursionError:
        raise InvalidEvent(_TOO_DEEP) from None
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        # (msgspec 0.19 raises UnicodeDecodeError for bytes that are not UTF-8 inside a
        # string; orjson below names it as invalid JSON)
        return _decode_slow(line, now_ms)
    series = _checked(ev, now_ms)
    if series is None:
        return _decode_slow(line, now_ms)
    return ev, series


def decode_lines(lines: Sequence[bytes]) -> list[Event]:
    """``lines`` as msgspec reads them into :class:`Event` objects, types and sizes
    checked, in one call for all of them, not one a line: ``bench.worker_core``'s decode
    stage took 0.49 µs an event against 0.51-0.56 (0.31 against 0.45 with the collector
    on, a scratch run of 1,000 tagged events). A line of two JSON objects gives two
    events here: :func:`decode_all` counts them. msgspec's errors are raised."""
    return _DECODER.decode_lines(b"\n".join(lines))


def decode_all(lines: Sequence[bytes], *, now_ms: int) -> tuple[list[Event], list[str]] | None:
    """Every line of an envelope as :func:`decode` reads it on its fast path, and their
    series keys, in one decoder call and one pass over the events; None when any
    line needs more than that path (a line over ``MAX_EVENT_BYTES``, one msgspec refuses
    or one the rules after it leave to the full rules): the caller then decodes the lines
    one by one, which names what is wrong with each.

    >>> lines = [b'{"kind":"metric","ts":1700000000000,"service":"a","name":"m","value":1}']
    >>> events, series = decode_all(lines, now_ms=1_700_000_000_000)
    >>> series, events[0].value
    (['metric|a|m'], 1.0)
    >>> decode_all([*lines, b'{"kind":"metric"}'], now_ms=1_700_000_000_000) is None
    True
    """
    if lines and max(map(len, lines)) > MAX_EVENT_BYTES:
        return None
    try:
        events = decode_lines(lines)
    except (RecursionError, msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None
    if len(events) != len(lines):  # the one-line-one-event rule decides, not the decoder
        return None
    series = [_checked(ev, now_ms) for ev in events]
    if None in series:
        return None
    return events, series  # type: ignore[return-value]  # no None in it


#: The series key of each (kind, service, name, step, tag items) whose tags passed
#: :func:`check_tags`: one lookup an event for both, as many as ``KEYS_KEPT``: a smaller
#: set of checked tags (100,000) was cleared over and over by a worker with 100,000
#: tagged series, and each event then checked its tags again.
_KEYS: dict[tuple[Any, ...], str] = {}


def _checked(ev: Event, now_ms: int) -> str | None:
    """The rules a msgspec type cannot say, on an event it accepted: its series key, or
    None when the full rules must decide."""
    ts = ev.ts
    if ts < MIN_TS_MS or ts > now_ms + MAX_FUTURE_MS:
        return None
    value = ev.value
    if value is None:
        if ev.kind == "metric":
            return None
    elif not math.isfinite(value):
        return None
    for key in _REQUIRED_BY_KIND[ev.kind]:
        required = getattr(ev, key)
        if required is None or required == "":
            return None
    tags = ev.tags
    if not tags:
        return key_of(ev.kind, ev.service, ev.name, ev.step)
    parts = (ev.kind, ev.service, ev.name, ev.step, *tags.items())
    series = _KEYS.get(parts)
    if series is None:  # tags are checked once per series, not per event
        try:
            check_tags(tags)
        except InvalidEvent:
            return None
        if len(_KEYS) >= KEYS_KEPT:
            _KEYS.clear()
        series = _KEYS[_shared(parts)] = compose(*parts)  # not in key_of's cache too
    return series


def _shared(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """``parts`` (kind, service, name, step, tag items) with its names interned, to be
    kept as a key: each event decodes into strings of its own, and a key kept from them
    held a copy of the kind, service, name and tag keys for every series. The processor
    at 100,000 tagged series after 600,000 events (a scratch run, tracemalloc): what its
    decoding left alive went from 42.2 to 31.2 MB. The tags' values are kept as they
    came: most are a series' own, and interning them too left 35.9 MB (the interned set
    grew by about what they saved).

    >>> a, b = _shared(("metric", "api", "x", None, ("host", "h1"))), _shared(
    ...     ("".join(["met", "ric"]), "api", "y", None, ("".join(["ho", "st"]), "h2")))
    >>> a[0] is b[0] and a[4][0] is b[4][0], a == ("metric", "api", "x", None, ("host", "h1"))
    (True, True)
    """
    kind, service, name, step, *items = parts
    intern = sys.intern
    return (
        intern(kind), intern(service), intern(name), None if step is None else intern(step),
        *((intern(k), v) for k, v in items),
    )  # fmt: skip


def _decode_slow(line: bytes, now_ms: int) -> tuple[Event, str]:
    try:
        decoded = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidEvent(_TOO_DEEP) from None
    out = _validate(decoded, now_ms=now_ms)  # the fast path has already said no
    fields = {k: out[k] for k in _EVENT_FIELDS if out.get(k) is not None and k != "v"}
    return Event(**fields), out["series"]

"""The series key, ``kind|service|name[|step=STEP][|tag=value,...]``: the unit of windows,
rules and detection, written and read here only.

Tags are sorted by name; tag names hold no ``|``, ``=`` or ``,`` (the event schema
refuses them). A key is read two ways:

- :meth:`SeriesKey.parse` takes a key alone (a person typed it, or a row holds it): kind,
  service and name are its first three fields, so it needs them free of ``|``;
- :meth:`SeriesKey.of` takes a key with its kind, service and name known (the worker
  holds them decoded), so those may hold anything.

>>> key = SeriesKey("step.end", "ml", "train", step="fit", tags=(("gpu", "a100"),))
>>> str(key)
'step.end|ml|train|step=fit|gpu=a100'
>>> SeriesKey.parse(str(key)) == key
True
>>> SeriesKey.parse("metric|api|latency_ms").whole
True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


class NotASeriesKey(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SeriesKey:
    kind: str
    service: str
    name: str
    step: str | None = None
    #: ``(name, value)`` pairs, sorted by name.
    tags: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return key_of(self.kind, self.service, self.name, self.step, *self.tags)

    @property
    def whole(self) -> bool:
        """Only ``kind|service|name``: in a query, every series of that name."""
        return self.step is None and not self.tags

    @classmethod
    def parse(cls, key: str) -> SeriesKey:
        """A key with kind, service and name free of ``|``; raises :class:`NotASeriesKey`.

        >>> SeriesKey.parse("metric|api|latency_ms|route=/a,code=200").tags
        (('code', '200'), ('route', '/a'))
        """
        parts = key.split("|", 3)
        if len(parts) < 3 or not all(parts[:3]):
            raise NotASeriesKey(f"{key!r} is not a series key (kind|service|name[|step=..][|tags])")
        kind, service, name = parts[:3]
        step, tags = _tail(parts[3] if len(parts) > 3 else "")
        return cls(kind, service, name, step, tags)

    @classmethod
    def of(cls, key: str, kind: str, service: str, name: str) -> SeriesKey:
        """``key``, whose kind, service and name are known.

        >>> SeriesKey.of("metric|a|b|c|x=1", "metric", "a|b", "c")
        SeriesKey(kind='metric', service='a|b', name='c', step=None, tags=(('x', '1'),))
        """
        rest = key[len(kind) + len(service) + len(name) + 3 :]
        step, tags = _tail(rest)
        return cls(kind, service, name, step, tags)


def _tail(rest: str) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The step and tags after ``kind|service|name|``."""
    if not rest:
        return None, ()
    step = None
    if rest.startswith("step="):
        step, _, rest = rest[5:].partition("|")
    pairs = []
    for pair in rest.split(",") if rest else ():
        name, _, value = pair.partition("=")
        pairs.append((name, value))
    return step, tuple(sorted(pairs))


#: Series keys a process keeps made (the worker makes one for every event).
KEYS_KEPT = 262_144


def compose(kind: str, service: str, name: str, step: str | None, *tags: tuple[str, str]) -> str:
    """The key of those parts (``tags`` in any order), made anew: :func:`key_of` keeps
    them, and the worker keeps its own (``producers.events``)."""
    key = f"{kind}|{service}|{name}"
    if step:
        key += f"|step={step}"
    if tags:
        key += "|" + ",".join(f"{k}={v}" for k, v in sorted(tags))
    return key


key_of = functools.lru_cache(maxsize=KEYS_KEPT)(compose)

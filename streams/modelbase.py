"""A detector model's state as stored: only what differs from a frozen base.

Most of a default model's JSON state says what every default model says: the kinds of
its detectors and their constructor parameters (windows, rates, graces, bounds). Of the
7,977 bytes of the longest default state found, 1,088 were such key-value pairs, equal
to a fresh default model's (a scratch count). A worker keeps a state per series in its
checkpoints, and a default model's state may take at most 8 KB, so those bytes are
room that every change of the detector has to find.

:func:`thin` writes a state as its differences from a **base**, a fresh default model's
state frozen in a file of this package (``model_base_<N>.json``) under a number that the
thin state carries (``"base": N``); :func:`thick` puts the base's values back. A base
never changes once released: a later default with other parameters is a new base
(``BASES``), and a state thinned against an older base is restored against that base,
so a restored model scores as the one saved whatever the defaults became since. A state
without ``"base"`` (written before this module, or one :func:`thin` left whole) is read
as it is.

The difference is structural: in a mapping, a key whose value is the base's (the same
JSON, ``1`` and ``1.0`` being different) is left out, a mapping under both is thinned in
turn, and a list of mappings as long as the base's (a detector's detectors) element by
element. A state that lacks a key its base has at the same place could not be told
apart from one that has the base's value there, so it is stored whole.

>>> base = {"kind": "max", "alpha": 0.05, "detectors": [{"kind": "gaussian", "n": 0}]}
>>> state = {"kind": "max", "alpha": 0.05, "detectors": [{"kind": "gaussian", "n": 7}]}
>>> _thinned(state, base)
{'detectors': {'$each': [{'n': 7}]}}
>>> _thickened(_thinned(state, base), base) == state
True
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

#: The bases a thin state may name, by number, oldest first; the newest is written.
BASES = (1,)
CURRENT = BASES[-1]


@functools.cache
def base(number: int) -> dict[str, Any]:
    """Base ``number``'s state (read once; a frozen file of this package)."""
    if number not in BASES:
        raise ValueError(f"unknown model base {number!r}; this worker knows {list(BASES)}")
    text = resources.files("streams").joinpath(f"model_base_{number}.json").read_bytes()
    data: dict[str, Any] = orjson.loads(text)
    return data


def thin(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` as its differences from the current base, naming it; whole when it
    lacks a key the base has at the same place."""
    try:
        thinned = _thinned(state, base(CURRENT))
    except _Whole:
        return state
    return {"base": CURRENT, **thinned}


def thick(state: dict[str, Any]) -> dict[str, Any]:
    """The whole state of a :func:`thin` one (a state naming no base: as it is)."""
    if "base" not in state:
        return state
    rest = {k: v for k, v in state.items() if k != "base"}
    return _thickened(rest, base(state["base"]))  # type: ignore[no-any-return]


class _Whole(Exception):
    """A mapping lacks a key of its base's: the state is kept whole."""


def _thinned(state: dict[str, Any], under: dict[str, Any]) -> dict[str, Any]:
    """What of ``state`` differs from ``under``, mappings under mappings in turn and
    lists of mappings as long as the base's element by element (``{"$each": [...]}``).
    A value equal to the base's and written as the same JSON (``==`` alone takes ``1``
    for ``1.0`` and ``-0.0`` for ``0.0``) is left out whole, compared in C; a mapping
    that differs is compared key by key. A young default model (most of a worker's at
    100,000 series) takes about 30 µs to thin, a mature one about 50, against about 30
    to write as JSON; key by key everywhere they took 40 and 46, each mapping's whole
    JSON compared at every depth 84, and compiling this module by mypyc saved nothing
    (scratch timings)."""
    if not under.keys() <= state.keys():
        raise _Whole
    out: dict[str, Any] = {}
    for key, value in state.items():
        was = under.get(key, _MISSING)
        kind = type(value)
        if kind is not type(was):  # the base's missing too
            out[key] = value
        elif value == was and orjson.dumps(value) == orjson.dumps(was):
            continue  # the same whatever it holds: compared in C (half a young model's)
        elif kind is dict:
            part = _thinned(value, was)
            if part:
                out[key] = part
        elif kind is list and _mappings(value) and _mappings(was) and len(value) == len(was):
            parts = [_thinned(v, w) for v, w in zip(value, was, strict=True)]
            if any(parts):
                out[key] = {"$each": parts}
        else:
            out[key] = value
    return out


_MISSING = object()


def _mappings(value: list[Any]) -> bool:
    return bool(value) and all(type(v) is dict for v in value)


def _thickened(part: Any, was: Any) -> Any:
    """The value ``part`` (a thinned form under ``was``) stands for."""
    if isinstance(part, dict) and isinstance(was, list) and "$each" in part:
        return [_thickened(p, w) for p, w in zip(part["$each"], was, strict=True)]
    if isinstance(part, dict) and isinstance(was, dict):
        out = dict(was)
        for key, value in part.items():
            out[key] = _thickened(value, was[key]) if key in was else value
        return out
    return part

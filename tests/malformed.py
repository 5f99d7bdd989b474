"""Malformed event lines of many shapes, each with the reason the worker must give."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import orjson

_GOOD = {"kind": "metric", "ts": 1_700_000_000_000, "service": "api", "name": "x", "value": 1.0}


def _variants() -> Iterator[tuple[bytes, str]]:
    yield b"{not json", "not valid JSON"
    yield b'{"kind": "metric", "ts": NaN}', "not valid JSON"
    yield b"\xff\xfe\x00garbage", "not valid JSON"
    yield b"[1, 2, 3]", "must be a JSON object"
    yield orjson.dumps({**_GOOD, "kind": "telepathy"}), "unknown kind"
    yield orjson.dumps({k: v for k, v in _GOOD.items() if k != "ts"}), "missing field 'ts'"
    yield orjson.dumps({**_GOOD, "ts": "yesterday"}), "field 'ts' must be integer"
    yield orjson.dumps({**_GOOD, "ts": 1_700_000_000}), "before 2000-01-01"
    yield orjson.dumps({**_GOOD, "ts": 4_000_000_000_000}), "in the future"
    yield orjson.dumps({**_GOOD, "value": "12"}), "field 'value' must be a number"
    yield orjson.dumps({k: v for k, v in _GOOD.items() if k != "value"}), "needs a 'value'"
    yield orjson.dumps({**_GOOD, "service": 42}), "field 'service' must be a string"
    yield orjson.dumps({**_GOOD, "ok": "yes"}), "field 'ok' must be true or false"
    yield orjson.dumps({**_GOOD, "colour": "red"}), "unknown field 'colour'"
    yield orjson.dumps({**_GOOD, "attrs": {"blob": "x" * 70_000}}), "larger than"
    yield orjson.dumps({**_GOOD, "kind": "step.end", "execution_id": "e1"}), "missing field 'step'"


def malformed(n: int) -> list[tuple[bytes, str]]:
    """``n`` malformed lines; each line is distinct so it can be found in the DLQ."""
    out = []
    for i, (line, reason) in zip(range(n), itertools.cycle(list(_variants())), strict=False):
        # A distinct, harmless suffix keeps the lines unique without changing the fault.
        out.append((line + b" " * (i // 16), reason))
    return out

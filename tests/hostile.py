"""Hostile event lines, seeded: every way a publisher can get an event wrong.

:func:`hostile` yields ``(line, category)``; every line is distinct (a counter is folded
into it) so each can be found once in the dead-letter topic. No line is a valid event.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson

NOW_MS = 1_790_000_000_000


def _good(i: int) -> dict:
    return {"kind": "metric", "ts": NOW_MS, "service": "fuzz", "name": f"m{i % 5}", "value": 1.0}


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _one(rng: random.Random, i: int) -> tuple[bytes, str]:
    good = _good(i)
    tag = f"h{i}"
    category = rng.choices(CATEGORIES, weights=WEIGHTS)[0]
    if category == "invalid_json":
        line = rng.choice([b"{not json ", b'{"kind": "metric",', b"}{", b"nul\x00l"]) + tag.encode()
    elif category == "non_utf8":
        line = b'{"kind":"metric","service":"\xff\xfe' + tag.encode() + b'"}'
    elif category == "not_an_object":
        line = rng.choice([b"[1,2,", b'"just a string ', b"42 "]) + tag.encode() + b"]"
    elif category == "wrong_type":
        key, value = rng.choice(
            [("ts", "yesterday"), ("value", "12"), ("service", 42), ("ok", "yes"), ("tags", [1])]
        )
        line = orjson.dumps({**good, key: value, "attrs": {"i": tag}})
    elif category == "missing_field":
        key = rng.choice(["kind", "ts", "service", "name", "value"])
        line = orjson.dumps({**{k: v for k, v in good.items() if k != key}, "attrs": {"i": tag}})
    elif category == "unknown_kind":
        line = orjson.dumps({**good, "kind": rng.choice(["telepathy", "", "METRIC"]) + tag})
    elif category == "nan_inf":
        literal = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
        line = b'{"kind":"metric","ts":%d,"service":"%s","name":"m","value":%s}' % (
            NOW_MS,
            tag.encode(),
            literal,
        )
    elif category == "ts_far_past":
        line = orjson.dumps({**good, "ts": rng.choice([0, 1, 946_684_799_999]), "name": tag})
    elif category == "ts_far_future":
        line = orjson.dumps({**good, "ts": rng.choice([2**62, 32_503_680_000_000]), "name": tag})
    elif category == "huge_string":
        line = orjson.dumps({**good, "attrs": {"blob": tag + "x" * (1 << 20)}})
    elif category == "deep_nesting":
        depth = rng.choice([1_000, 2_000, 5_000])  # past what the decoders take
        line = b'{"kind":"metric","ts":%d,"service":"%s","name":"m","value":1,"attrs":%s}' % (
            NOW_MS,
            tag.encode(),
            _nested(depth).encode(),
        )
    else:  # unknown_field
        line = orjson.dumps({**good, "colour": tag})
    return line, category


CATEGORIES = (
    "invalid_json",
    "non_utf8",
    "not_an_object",
    "wrong_type",
    "missing_field",
    "unknown_kind",
    "nan_inf",
    "ts_far_past",
    "ts_far_future",
    "huge_string",
    "deep_nesting",
    "unknown_field",
)


#: 1 MB lines are rarer than the rest, so that 10,000 lines stay under 100 MB.
WEIGHTS = tuple(0.05 if c == "huge_string" else 1.0 for c in CATEGORIES)


def hostile(n: int, seed: int = 7) -> Iterator[tuple[bytes, str]]:
    rng = random.Random(seed)
    for i in range(n):
        yield _one(rng, i)

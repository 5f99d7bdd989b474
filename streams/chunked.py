"""JSON written a chunk of rows at a time, so that a large state's JSON form never exists
as Python objects all at once.

A worker's checkpoint is the JSON of its open windows and detector models: at 100,000
series, hundreds of thousands of rows of nested lists. Made as one object tree and then
encoded, the tree took about 2.6 times the bytes it became (below: the peak with it, less
the peak without checkpoints and the bytes: about 490 MB for 187 MB). Here a long
list is given as :class:`Rows` (an iterable that is read once) and encoded :data:`CHUNK`
rows at a time: only one chunk's objects live at a time. The bytes are the same as
``orjson.dumps`` of the same value with plain lists.

The processor with the default rules, 1M events of 100,000 series on one partition and
a checkpoint every 100,000 events (a scratch run; the last snapshot 187 MB): peak RSS
1,594 MB with the whole tree, 1,247 MB in chunks; the checkpoints' CPU the same (35.3 and
35.2 s). In ``bench.pipeline`` at 100,000 series the worker's peak moved less (3,047 to
2,985 MB, one run each, beside other work on the machine): its checkpoints are not what
sets it.

>>> value = {"a": 1, "rows": Rows([i, str(i)] for i in range(5)), "tail": [None]}
>>> dumps(value, chunk=2)
b'{"a":1,"rows":[[0,"0"],[1,"1"],[2,"2"],[3,"3"],[4,"4"]],"tail":[null]}'
>>> dumps({"empty": Rows(iter(()))}) == orjson.dumps({"empty": []})
True
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

#: Rows encoded together: large enough that orjson's call is not the cost, small enough
#: that a chunk's objects are a few MB at most.
CHUNK = 4096


class Rows:
    """A JSON array given row by row (read once, when it is encoded)."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


def dumps(value: Any, *, chunk: int | None = None) -> bytes:
    """``value`` as JSON bytes; a :class:`Rows` inside it (as a dict's value, at any
    depth of dicts) is encoded ``chunk`` (default :data:`CHUNK`) rows at a time, in the
    order the dict gives. A dict that holds no :class:`Rows` is orjson's to encode whole."""
    return b"".join(_encode(value, chunk or CHUNK))


def _encode(value: Any, chunk: int) -> Iterator[bytes]:
    if isinstance(value, Rows):
        yield b"["
        rows, sep = iter(value.items), b""
        while part := list(itertools.islice(rows, chunk)):
            yield sep + orjson.dumps(part)[1:-1]
            sep = b","
        yield b"]"
    elif isinstance(value, dict) and _holds_rows(value):
        sep = b"{"
        for key, item in value.items():
            yield sep + orjson.dumps(key) + b":"
            yield from _encode(item, chunk)
            sep = b","
        yield b"{}" if sep == b"{" else b"}"
    else:
        yield orjson.dumps(value)


def _holds_rows(value: dict[Any, Any]) -> bool:
    return any(
        isinstance(v, Rows) or (isinstance(v, dict) and _holds_rows(v)) for v in value.values()
    )

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

What the store keeps is :func:`packed`: the same JSON, compressed with zstd as it is
encoded, so its bytes never exist whole either. A checkpoint of 100.9 MB of JSON became
8.0 MB, and the Python memory it held at its peak went from 212 to 129 MB (a scratch
run: the processor with the default rules, 400,000 events of 100,000 series).

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

import cramjam
import orjson

#: Rows encoded together: large enough that orjson's call is not the cost, small enough
#: that a chunk's objects are a few MB at most.
CHUNK = 4096
#: zstd's level for :func:`packed`. A worker's state at 100,000 series (the processor
#: with the default rules after 1M events of bench.pipeline, a scratch run) was 157 MB
#: of JSON made in 2.65 s of CPU; level 1 made it 23.5 MB in 0.23 s more (level 3: 26.4
#: MB in 0.51 s), decompressed in 0.11 s (parsing its JSON then took 7.7 s).
LEVEL = 1
#: What every zstd frame starts with (JSON never does).
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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


def packed(value: Any, *, chunk: int | None = None) -> bytes:
    """:func:`dumps` compressed with zstd (level :data:`LEVEL`) as it is encoded, a chunk
    at a time: neither the JSON's objects nor its bytes exist whole, only the compressed
    bytes grow. :func:`loads` reads them back.

    >>> def value():  # its rows are read once
    ...     return {"a": 1, "rows": Rows([i, str(i)] for i in range(5000))}
    >>> data, plain = packed(value(), chunk=64), dumps(value())
    >>> len(data) < len(plain) // 2, loads(data) == orjson.loads(plain), loads(plain)["a"]
    (True, True, 1)
    """
    compressor = cramjam.zstd.Compressor(level=LEVEL)
    for part in _encode(value, chunk or CHUNK):
        compressor.compress(part)
    return bytes(compressor.finish())


def loads(data: bytes) -> Any:
    """The value of :func:`packed` bytes, or of plain JSON (a checkpoint stored before
    checkpoints were compressed)."""
    if data[:4] == _ZSTD_MAGIC:
        return orjson.loads(memoryview(cramjam.zstd.decompress(data)))
    return orjson.loads(data)


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

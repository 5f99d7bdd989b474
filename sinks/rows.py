"""The stream's records as ClickHouse rows: the one module that knows the tables' columns
and their units.

Records and topics carry times in milliseconds; the tables' times are ``DateTime64(3)``,
which JSONEachRow fills from seconds: an integer there is read as seconds too (chDB read
``1700000000123`` as ``9999-12-31 23:59:59``), so every time becomes ``ms / 1000`` here.
The raw ``events`` row is made while the processor decodes each event (the hot path):
:class:`RawRows` is handed to it (``Processor(raw_rows=...)``, through the sink), so
streams decides what an event is and this module what its row is.

>>> from tests.samples import window
>>> row = window_row(window(5, mean=2.0, count=3).message())
>>> (row["window_start"], row["window_end"], row["width_s"], row["count"], row["mean"])
(240.0, 300.0, 60, 3, 2.0)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import msgspec
import orjson

from producers.alerts import Alert
from producers.events import Event
from streams.records import ScoreRecord, WindowRecord

# msgspec, not orjson: orjson's small results each hold a 4 KiB buffer, and a minute
# closing 100,000 series keeps that many lines alive at once.
_ENCODE = msgspec.json.Encoder().encode


class RawRows:
    """The ``events`` table row of a checked event, as one JSONEachRow line: the event's
    own fields (``ts`` in seconds) and where it came from (``source``, partition, offset,
    index in its envelope), and ``late`` when it was.

    >>> row = RawRows("c/t")(
    ...     Event(kind="metric", ts=1_700_000_000_123, service="s", name="m", value=2.5),
    ...     "metric|s|m", 3, 41, 0, True,
    ... )
    >>> import orjson; r = orjson.loads(row)
    >>> (r["ts"], r["series"], r["source"], r["partition"], r["offset"], r["idx"], r["late"])
    (1700000000.123, 'metric|s|m', 'c/t', 3, 41, 0, True)
    """

    def __init__(self, source: str) -> None:
        self._source_field = b'"source":%s,"partition":' % orjson.dumps(source)

    def __call__(
        self, ev: Event, series: str, partition: int, offset: int, index: int, late: bool
    ) -> bytes:
        ev.ts = ev.ts / 1000  # type: ignore[assignment]  # the event is not used after this
        # The key encoded each time, not cached: msgspec takes 60-90 ns, where a cache
        # of 100,000 keys and json.dumps for the rest took 97 ns at 1,000 series and 350
        # at 100,000, whose keys overflowed it (a scratch timing of 300,000 keys).
        return b'%s,"series":%s,%s%d,"offset":%d,"idx":%d%s}' % (
            _ENCODE(ev)[:-1],
            _ENCODE(series),
            self._source_field,
            partition,
            offset,
            index,
            b',"late":true' if late else b"",
        )


def window_row(message: dict[str, Any]) -> dict[str, Any]:
    """The ``windows`` table row of a closed window from its topic message
    (:meth:`WindowRecord.message`: every figure of ``streams.figures``, and the sketch as
    two maps of bucket -> count, which ``sumMap`` merges in SQL): the times in seconds,
    and the width and hop."""
    row = dict(message)
    start, end, hop = row.pop("window_start_ms"), row.pop("window_end_ms"), row.pop("hop_ms")
    row.update(_window_times(start, end, hop))
    return row


def window_line(record: WindowRecord, line: bytes) -> bytes:
    """:func:`window_row` as the JSONEachRow line the writer inserts, made from the
    window's topic line (``line``, :meth:`WindowRecord.line`) by adding the table's times:
    the topic's times in ms stay in it, and the insert skips them as columns it does not
    have. (A dict and an encoding a window, 200,000 windows a minute at 100,000 series,
    cost more than the addition.)

    >>> from tests.samples import window
    >>> w = window(5, mean=2.0, count=3)
    >>> row = orjson.loads(window_line(w, w.line()))
    >>> {k: row[k] for k in window_row(w.message())} == window_row(w.message())
    True
    >>> sorted(set(row) - set(window_row(w.message())))
    ['hop_ms', 'window_end_ms', 'window_start_ms']
    """
    return line[:-1] + _times_suffix(record.start_ms, record.end_ms, record.hop_ms)


@functools.lru_cache(maxsize=1024)
def _times_suffix(start_ms: int, end_ms: int, hop_ms: int) -> bytes:
    """The table's times as the end of a JSON object: the same for every series' window
    of one width and end (100,000 of them at 100,000 series), so encoded once for all."""
    return b"," + _ENCODE(_window_times(start_ms, end_ms, hop_ms))[1:]


def _window_times(start_ms: int, end_ms: int, hop_ms: int) -> dict[str, Any]:
    return {
        "window_start": start_ms / 1000,
        "window_end": end_ms / 1000,
        "width_s": (end_ms - start_ms) // 1000,
        "hop_s": hop_ms // 1000,
    }


def score_row(s: ScoreRecord) -> dict[str, Any]:
    """The ``anomaly_scores`` table row of a detector's score of one window."""
    return {
        "series": s.series,
        "kind": s.kind,
        "service": s.service,
        "name": s.name,
        "detector": s.detector,
        "window": s.label,
        "window_end": s.end_ms / 1000,
        "value": s.value,
        "score": s.score,
        "threshold": s.threshold,
        "partition": s.partition,
    }


def alert_row(alert: Alert, source: str) -> dict[str, Any]:
    """The ``alerts`` table row: the topic's fields, and the Kafka log the transition was
    made from."""
    row = alert.to_dict()
    del row["v"], row["channels"]
    row["source"] = source
    for key in ("at", "started_at", "evaluated_at"):
        row[key] /= 1000
    return row


def lines(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as JSONEachRow: one JSON object a line."""
    return b"\n".join(_ENCODE(row) for row in rows)

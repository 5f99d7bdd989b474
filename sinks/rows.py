"""The stream's records as ClickHouse rows: the one module that knows the tables' columns
and their units.

Records and topics carry times in milliseconds; the tables' times are ``DateTime64(3)``,
which JSONEachRow fills from seconds: an integer there is read as seconds too (chDB read
``1700000000123`` as ``9999-12-31 23:59:59``), so every time in a JSON row becomes
``ms / 1000`` here (the raw events' Arrow columns say milliseconds in their type).
:class:`RawRows` is handed to the processor (``Processor(raw_rows=...)``, through the
sink), which keeps each event it decodes for its raw row (the hot path), so streams
decides what an event is and this module what its row is.

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
import pyarrow as pa

from producers.alerts import Alert
from producers.events import Event
from streams.records import RawBatch, ScoreRecord, WindowRecord

# msgspec, not orjson: orjson's small results each hold a 4 KiB buffer, and a minute
# closing 100,000 series keeps that many lines alive at once.
_ENCODE = msgspec.json.Encoder().encode
_astuple = msgspec.structs.astuple
_EVENT_FIELDS = Event.__struct_fields__
#: The event's text fields, each a column of its own (absent: the column's default).
_TEXT = (
    "kind", "service", "name", "status", "execution_id", "step", "trace_id", "span_id",
    "parent_id", "level", "message",
)  # fmt: skip
_TS = pa.timestamp("ms", tz="UTC")
#: Arrow's memory from malloc, not its default mimalloc pool, which kept what a batch's
#: columns had used: the worker's peak in ``bench.pipeline`` at 1,000 series was 1,078
#: and 1,080 MB so, against 1,137 and 1,204 with the default pool (same session).
_POOL = pa.system_memory_pool()
_TAGS = pa.map_(pa.string(), pa.string())
#: ``attrs``: the event's JSON object as its text (the column is a String).
_JSON = pa.binary()


class RawRows:
    """The ``events`` table's rows of checked events, inserted as the columns of one Arrow
    stream (``FORMAT ArrowStream``) instead of a JSON line each.

    The processor keeps each event as it decodes it (the hot path), with its series, its
    offset and index in the Kafka log, and whether it came late: a tuple
    (``streams.records.RawRow``), encoded into nothing yet. :meth:`seal` turns a part of
    them into columns while the batch waits, :meth:`payload` makes one insert of them:
    ClickHouse then reads typed columns instead of parsing text. Storing
    300,000 events into chDB with the table's views took 1.7-4.3 µs of CPU a row
    against 5.2-8.2 for the same rows as JSONEachRow, every row the same either way (a
    scratch run, three rounds).

    >>> from producers.events import Event
    >>> rows = RawRows("c/t")
    >>> ev = Event(kind="metric", ts=1_700_000_000_123, service="s", name="m", value=2.5)
    >>> batch = RawBatch(3, 41, 41, [(ev, "metric|s|m", 41, 0, True)])
    >>> [row] = read_payload(rows.payload([batch]))
    >>> (row["ts"].isoformat(), row["series"], row["source"], row["partition"], row["offset"])
    ('2023-11-14T22:13:20.123000+00:00', 'metric|s|m', 'c/t', 3, 41)
    >>> (row["idx"], row["late"], row["value"], row["ok"], row["status"], row["tags"])
    (0, True, 2.5, None, None, None)
    """

    __slots__ = ("source",)

    def __init__(self, source: str) -> None:
        self.source = source

    def seal(self, batch: RawBatch) -> None:
        """``batch``'s rows so far as one more part of Arrow columns, its events let go:
        a batch waits for its insert behind the one being stored, and its events held
        about three times the memory of their columns (the worker's peak in
        ``bench.pipeline`` at 1,000 series: 1,226 and 1,232 MB with the events held to
        the insert, 1,078 and 1,080 sealed once a batch is processed, against 971-1,006
        with a JSON line a row; sealed every ``streams.processing.SEAL_ROWS`` too, 1,075
        and 1,085 against 1,112 and 1,115 in another pair of runs)."""
        if batch.rows:
            batch.sealed.append(self.columns(batch))
            batch.sealed_rows += len(batch.rows)
            batch.rows = []

    def columns(self, batch: RawBatch) -> pa.RecordBatch:
        """The rows of ``batch`` (one partition's) as the table's columns."""
        events, series, offsets, indexes, late = zip(*batch.rows, strict=True)
        fields = dict(zip(_EVENT_FIELDS, zip(*map(_astuple, events), strict=True), strict=True))
        n = len(batch.rows)
        return pa.record_batch(
            {
                "ts": _array(fields["ts"], _TS),
                **{name: _array(fields[name], pa.string()) for name in _TEXT},
                "series": _array(series, pa.string()),
                "value": _array(fields["value"], pa.float64()),
                "ok": _array(fields["ok"], pa.bool_()),
                "tags": _array(fields["tags"], _TAGS),
                "attrs": _array([a if a is None else _ENCODE(a) for a in fields["attrs"]], _JSON),
                "late": _array(late, pa.bool_()),
                "source": pa.repeat(pa.scalar(self.source), n, memory_pool=_POOL),
                "partition": pa.repeat(
                    pa.scalar(batch.partition, pa.uint16()), n, memory_pool=_POOL
                ),
                "offset": _array(offsets, pa.uint64()),
                "idx": _array(indexes, pa.uint32()),
            }
        )

    def payload(self, batches: Iterable[RawBatch]) -> bytes:
        """One Arrow stream of the rows of ``batches`` (each a partition's, sealed or
        not), in order, as one record batch: one block for ClickHouse to store."""
        parts = [
            part for b in batches for part in (*b.sealed, *([self.columns(b)] if b.rows else []))
        ]
        table = pa.Table.from_batches(parts).combine_chunks(memory_pool=_POOL)
        out = pa.BufferOutputStream(memory_pool=_POOL)
        with pa.ipc.new_stream(out, table.schema) as stream:
            stream.write_table(table)
        return out.getvalue().to_pybytes()  # type: ignore[no-any-return]


def _array(values: Any, type: pa.DataType) -> pa.Array:
    return pa.array(values, type, memory_pool=_POOL)


def read_payload(payload: bytes) -> list[dict[str, Any]]:
    """The rows of a :meth:`RawRows.payload` as dicts, maps as dicts (for tests and
    debugging)."""
    table = pa.ipc.open_stream(payload).read_all()
    return table.to_pylist(maps_as_pydicts="strict")  # type: ignore[no-any-return]


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
    >>> import orjson
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

"""The stream's records as ClickHouse rows: the one module that knows the tables' columns
and their units.

Records and topics carry times in milliseconds; the tables' times are ``DateTime64(3)``,
which JSONEachRow fills from seconds: an integer there is read as seconds too (chDB read
``1700000000123`` as ``9999-12-31 23:59:59``), so every time in a JSON row becomes
``ms / 1000`` here (the Arrow columns of raw events and windows say milliseconds in their
type).
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
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from producers.alerts import Alert
from streams.figures import FIGURES
from streams.records import RawBatch, ScoreRecord, WindowRecord

# msgspec, not orjson: orjson's small results each hold a 4 KiB buffer, and a minute
# closing 100,000 series keeps that many lines alive at once.
_ENCODE = msgspec.json.Encoder().encode
#: The event's text fields, each a column of its own (absent: the column's default).
_TEXT = (
    "kind", "service", "name", "status", "execution_id", "step", "trace_id", "span_id",
    "parent_id", "level", "message",
)  # fmt: skip
#: The event fields a raw row has (``v`` is not one), each read into a list of its own:
#: 0.87-0.98 µs an event against 1.09-1.26 for each event made a tuple and the tuples
#: transposed (a scratch run, 100,000 events, the worker's collector thresholds).
_FIELDS = {
    name: operator.attrgetter(name) for name in ("ts", *_TEXT, "value", "ok", "tags", "attrs")
}
#: A raw row's parts (``streams.records.RawRow``), each read into a list of its own,
#: not the rows transposed by ``zip(*rows)``: ``bench.worker_core``'s raw rows stage at
#: 1,000 series took 1.21 and 1.24 µs an event against 1.48 and 1.53 (runs in turn).
_PARTS = tuple(operator.itemgetter(i) for i in range(5))
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
        events, series, offsets, indexes, late = (list(map(get, batch.rows)) for get in _PARTS)
        fields = {name: list(map(get, events)) for name, get in _FIELDS.items()}
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
        return _stream(pa.Table.from_batches(parts).combine_chunks(memory_pool=_POOL))


def _array(values: Any, type: pa.DataType) -> pa.Array:
    return pa.array(values, type, memory_pool=_POOL)


def _stream(data: pa.Table | pa.RecordBatch) -> bytes:
    """``data`` as one Arrow stream: one block for ClickHouse to store."""
    out = pa.BufferOutputStream(memory_pool=_POOL)
    with pa.ipc.new_stream(out, data.schema) as stream:
        stream.write(data)
    return out.getvalue().to_pybytes()  # type: ignore[no-any-return]


def read_payload(payload: bytes) -> list[dict[str, Any]]:
    """The rows of a :meth:`RawRows.payload` or a :func:`window_payload` as dicts, maps as
    dicts (for tests and debugging)."""
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


def window_payload(records: Sequence[WindowRecord]) -> bytes:
    """The ``windows`` table's rows of ``records`` (:func:`window_row` of each message) as
    the columns of one Arrow stream (``FORMAT ArrowStream``): ClickHouse reads typed
    columns instead of parsing a JSON line a window. 302,092 windows at 100,000 series
    (scratch timings): chDB's insert took 2.3-2.7 µs of CPU a window against 11.9-13.0
    for JSON lines (two inserts of each), 69 MB against 174, and the columns 3.2 µs a
    window to make here against 0.8 for those lines (each the window's topic line with
    the table's times added; best three of five, the worker's collector thresholds).

    >>> from tests.samples import window
    >>> [row] = read_payload(window_payload([window(5, mean=2.0, count=3)]))
    >>> (row["window_start"].isoformat(), row["width_s"], row["hop_s"], row["mean"])
    ('1970-01-01T00:04:00+00:00', 60, 60, 2.0)
    >>> (row["error_rate"], row["sketch_zeros"], row["sketch_pos"], row["p99"])
    (0.0, 0, {}, 2.0)
    """
    column = functools.partial(_column, records)
    starts, ends = column("start_ms", pa.int64()), column("end_ms", pa.int64())
    zeros, positive, negative = _sketches([r.sketch for r in records])
    return _stream(
        pa.record_batch(
            {
                **{name: column(name, pa.string()) for name in _WINDOW_TEXT},
                "window": column("label", pa.string()),
                "window_start": starts.cast(_TS),
                "window_end": ends.cast(_TS),
                "width_s": pc.divide(pc.subtract(ends, starts), 1000).cast(pa.uint32()),
                "hop_s": pc.divide(column("hop_ms", pa.int64()), 1000).cast(pa.uint32()),
                "partition": column("partition", pa.uint16()),
                **{f.name: column(f.name, _FIGURE_TYPES[f.column]) for f in FIGURES},
                "sketch_zeros": zeros,
                "sketch_pos": positive,
                "sketch_neg": negative,
            }
        )
    )


#: A window's text columns, named as in its record.
_WINDOW_TEXT = ("series", "kind", "service", "name")
#: Each figure's column type (``streams.figures``) in Arrow.
_FIGURE_TYPES = {"UInt64": pa.uint64(), "Float64": pa.float64(), "Nullable(Float64)": pa.float64()}


def _column(records: Sequence[Any], name: str, type: pa.DataType) -> pa.Array:
    """The attribute ``name`` of every record, in order, as an Arrow column (one C loop
    to gather it: transposing the records' tuples instead made a tuple of each for the
    collector to walk, 5.3 µs a window against 1.3 under Python's default collector
    thresholds, 1.2 against 1.3 with it off; a scratch timing, 302,092 windows)."""
    return _array(list(map(operator.attrgetter(name), records)), type)


def _sketches(sketches: list[Any]) -> tuple[pa.Array, pa.MapArray, pa.MapArray]:
    """The zeros, and the positive and negative bucket maps, of windows' sketches (None:
    no values, no buckets) as Arrow columns, in one pass: each map made of its keys,
    counts and where each window's end (0.61-0.67 µs a window against 0.92-0.95
    converting the sketches' dicts; a scratch timing, best three of five)."""
    zeros: list[int] = []
    pos_keys: list[int] = []
    pos_counts: list[int] = []
    pos_ends = [0]
    neg_keys: list[int] = []
    neg_counts: list[int] = []
    neg_ends = [0]
    for sketch in sketches:
        if sketch is None:
            zeros.append(0)
        else:
            zero, pos, neg = sketch
            zeros.append(zero)
            pos_keys.extend(pos)
            pos_counts.extend(pos.values())
            neg_keys.extend(neg)
            neg_counts.extend(neg.values())
        pos_ends.append(len(pos_keys))
        neg_ends.append(len(neg_keys))
    return (
        _array(zeros, pa.uint64()),
        _map(pos_ends, pos_keys, pos_counts),
        _map(neg_ends, neg_keys, neg_counts),
    )


def _map(ends: list[int], keys: list[int], counts: list[int]) -> pa.MapArray:
    return pa.MapArray.from_arrays(
        _array(ends, pa.int32()), _array(keys, pa.int32()), _array(counts, pa.uint64())
    )


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

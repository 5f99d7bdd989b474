"""The window figures are declared once (``streams.figures``): the ``windows`` table the
migrations make has a column of the declared type for each, and no figure column the
declaration lacks; a window's row and topic message carry exactly them, and the chart
reads them back from the table."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from sinks import history, rows
from sinks.queries import ReadOnly
from sinks.settings import StoreSettings
from sinks.writer import ClickHouseSink
from streams.figures import CHART, FIGURES, NAMES
from streams.processing import Processor
from streams.records import BatchResult
from streams.windows import parse_windows
from tests.conftest import open_store

pytestmark = pytest.mark.integration

#: The windows table's columns that are not figures: what a window is, and its sketch.
NOT_FIGURES = {
    "series", "kind", "service", "name", "window", "window_start", "window_end", "width_s",
    "hop_s", "partition", "sketch_zeros", "sketch_pos", "sketch_neg",
}  # fmt: skip


def test_the_windows_table_has_a_column_of_the_declared_type_for_each_figure(tmp_path):
    with open_store(tmp_path) as ch:
        columns = dict(
            ch.query(
                "SELECT name, type FROM system.columns "
                "WHERE database = 'vigil' AND table = 'windows'"
            ).result_rows
        )
    assert set(columns) >= NOT_FIGURES
    figures = {name: kind for name, kind in columns.items() if name not in NOT_FIGURES}
    assert figures == {f.name: f.column for f in FIGURES}


def _closed_window():
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c/t")
    p.load(0, None, -1)
    line = b'{"kind":"metric","ts":1700000000000,"service":"s","name":"m","value":2.5}'
    p.process([(0, 0, line)], now_ms=1700000000000)
    (record,) = p.tick(now_ms=1700000000000 + 3_600_000).closed
    return record


def test_a_window_row_and_message_carry_every_figure_in_the_declared_order():
    record = _closed_window()
    message = record.message()
    row = rows.window_row(message)
    assert [k for k in row if k in NAMES] == list(NAMES)
    assert [k for k in message if k in NAMES] == list(NAMES)
    assert set(row) - set(NAMES) == NOT_FIGURES, "no figure undeclared"
    assert (row["count"], row["mean"], row["p95"], row["values"]) == (1, 2.5, 2.5, 1)
    # The topic in milliseconds, the table in seconds: the same window.
    assert (message["window_start_ms"], message["window_end_ms"]) == (
        1_699_999_980_000,
        1_700_000_040_000,
    )
    assert (row["window_start"], row["window_end"]) == (1_699_999_980.0, 1_700_000_040.0)


async def test_the_chart_draws_every_chart_figure_of_a_stored_window(tmp_path):
    """The row goes through the real writer into the windows table, and the dashboard's
    chart query reads each figure it declares back, with the window's values."""
    record = _closed_window()
    settings = StoreSettings(data_dir=tmp_path)
    sink = ClickHouseSink(settings)
    await sink.start()
    try:
        await sink.write(BatchResult(source="c/t", closed=[record]))
        chart = history.chart(
            ReadOnly.of(sink.client, settings),
            now=datetime(2023, 11, 15, tzinfo=UTC),
            series=record.series,
            since="2023-11-14T21:00:00",  # two hours of 1m windows: read from the windows
            until="2023-11-14T23:00:00",
            window="1m",
        )
    finally:
        await sink.close()
    assert chart["source"] == "windows"
    (point,) = chart["points"]
    assert set(point) == {"t", *CHART}
    assert {k: point[k] for k in CHART} == {k: getattr(record, k) for k in CHART}


def _varied_windows() -> list:
    """Closed 1m and 5m/1m windows of series that differ in every way a row can: values
    in buckets (positive, negative, zeros) and exact, none at all, extreme magnitudes,
    text that JSON would escape, two partitions."""
    start = 1_700_000_000_000 - 1_700_000_000_000 % 60_000
    lines = []
    for i in range(300):  # 300 values a minute: bucketed; some negative, some zero
        value = ((i * 37) % 300 - 60) * 1.5 if i % 7 else 0.0  # not in order
        lines.append({"kind": "metric", "ts": start + i * 100, "service": "api", "name": "m",
                      "value": value, "tags": {"host": 'h"1\\\u00e9\u2603'}})  # fmt: skip
    for i, value in enumerate((1e300, 1e-300, -2.5e-12, 7.0)):  # exact values, extremes
        lines.append({"kind": "metric", "ts": start + 60_000 + i, "service": "db", "name": "q",
                      "value": value})  # fmt: skip
    for i in range(3):  # counted, no values, one failed
        lines.append({"kind": "error", "ts": start + 90_000 + i, "service": "api",
                      "name": "Timeout", "ok": i != 1})  # fmt: skip
    parts = ([e for e in lines if e["name"] == "m"], [e for e in lines if e["name"] != "m"])
    messages = [(p, 0, b"\n".join(map(orjson.dumps, part))) for p, part in enumerate(parts)]
    processor = Processor(windows=parse_windows("1m,5m/1m"), grace_ms=0, source="c/t")
    closed = []
    for partition, offset, value in messages:
        processor.load(partition, None, -1)
        closed += processor.process([(partition, offset, value)], now_ms=start).closed
    closed += processor.tick(now_ms=start + 3_600_000).closed
    return closed


async def test_every_stored_window_is_the_row_its_message_declares_field_for_field(tmp_path):
    """The writer's Arrow columns (``rows.window_payload``) against ``rows.window_row`` of
    each window's message: every row and every column the same, none missing, none extra."""
    closed = _varied_windows()
    assert {r.label for r in closed} == {"1m", "5m/1m"}
    assert {r.partition for r in closed} == {0, 1}
    assert any(r.sketch and r.sketch[2] for r in closed) and any(r.values == 0 for r in closed)
    settings = StoreSettings(data_dir=tmp_path)
    sink = ClickHouseSink(settings)
    await sink.start()
    try:
        await sink.write(BatchResult(source="c/t", closed=closed))
        result = sink.client.query(
            "SELECT *, toUnixTimestamp64Milli(window_start) AS start_ms, "
            "toUnixTimestamp64Milli(window_end) AS end_ms FROM vigil.windows"
        )
    finally:
        await sink.close()
    stored = [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
    for row in stored:
        row["window_start"] = row.pop("start_ms") / 1000
        row["window_end"] = row.pop("end_ms") / 1000
        row["sketch_pos"], row["sketch_neg"] = dict(row["sketch_pos"]), dict(row["sketch_neg"])
    declared = []
    for record in closed:
        row = rows.window_row(record.message())
        row["sketch_pos"], row["sketch_neg"] = dict(row["sketch_pos"]), dict(row["sketch_neg"])
        declared.append(row)

    def key(row: dict) -> tuple:
        return (row["series"], row["window"], row["window_start"])

    assert len(stored) == len(declared) == len({key(r) for r in declared})
    assert sorted(stored, key=key) == sorted(declared, key=key)

"""The window figures are declared once (``streams.figures``): the ``windows`` table the
migrations make has a column of the declared type for each, and no figure column the
declaration lacks; a record's row and the chart carry exactly them."""

from __future__ import annotations

import pytest

from streams.figures import CHART, FIGURES, NAMES
from streams.processing import Processor
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


def test_a_window_row_carries_every_figure_and_the_chart_reads_them():
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c/t")
    p.load(0, None, -1)
    line = b'{"kind":"metric","ts":1700000000000,"service":"s","name":"m","value":2.5}'
    out = p.process([(0, 0, line)], now_ms=1700000000000)
    out = p.tick(now_ms=1700000000000 + 3_600_000)
    (record,) = out.closed
    row = record.row()
    assert [k for k in row if k in NAMES] == list(NAMES)
    assert set(row) - set(NAMES) == NOT_FIGURES, "no figure undeclared"
    assert (row["count"], row["mean"], row["p95"], row["values"]) == (1, 2.5, 2.5, 1)
    assert set(CHART) <= set(NAMES)

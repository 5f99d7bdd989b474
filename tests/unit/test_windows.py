import statistics

from streams.windows import TumblingWindows

MIN = 60_000


def _w(grace=10_000):
    return TumblingWindows(width_ms=MIN, grace_ms=grace, partition=2)


def _add(w, ts, value=1.0, ok=None, series="s"):
    return w.add(series, "metric", "svc", "n", ts=ts, value=value, ok=ok)


def test_an_event_on_a_boundary_belongs_to_the_window_it_starts():
    w = _w(grace=0)
    _add(w, MIN - 1)
    _add(w, MIN)
    _add(w, 2 * MIN)  # watermark reaches 2 min: closes [0,1) and [1,2)
    closed = w.close_ready()
    assert [(r.start_ms, r.end_ms, r.count) for r in closed] == [(0, MIN, 1), (MIN, 2 * MIN, 1)]


def test_window_stays_open_until_watermark_passes_end_plus_grace():
    w = _w(grace=10_000)
    _add(w, 30_000)
    _add(w, MIN + 9_999)
    assert w.close_ready() == []
    _add(w, MIN + 10_000)
    assert [r.start_ms for r in w.close_ready()] == [0]


def test_late_events_are_counted_per_series_not_merged():
    w = _w(grace=0)
    _add(w, 10_000)
    _add(w, 2 * MIN)
    assert len(w.close_ready()) == 1
    assert _add(w, 20_000, series="s") is False
    assert w.late == {"s": 1}
    assert w.close_ready() == []


def test_out_of_order_within_grace_is_merged():
    w = _w(grace=30_000)
    _add(w, 50_000)
    _add(w, MIN + 10_000)
    assert _add(w, 40_000) is True
    _add(w, 2 * MIN)
    rec = w.close_ready()[0]
    assert rec.count == 2


def test_aggregates_match_exact_statistics():
    w = _w(grace=0)
    values = [3.0, 1.5, 9.0, 4.25, 7.0]
    for i, v in enumerate(values):
        _add(w, 1000 * i, value=v, ok=(i % 2 == 0))
    _add(w, MIN, value=None)
    rec = w.close_ready()[0]
    assert (rec.count, rec.errors, rec.min, rec.max) == (5, 2, 1.5, 9.0)
    assert rec.mean == statistics.fmean(values)
    assert rec.row()["width_s"] == 60 and rec.row()["partition"] == 2


def test_snapshot_restore_round_trip_gives_the_same_windows():
    a = _w()
    for i in range(500):
        _add(a, i * 700, value=float(i % 13), ok=i % 7 != 0, series=f"s{i % 3}")
    b = TumblingWindows.restore(a.snapshot(), width_ms=MIN, grace_ms=10_000, partition=2)
    for w in (a, b):
        _add(w, 10 * MIN)
    assert a.close_ready() == b.close_ready()
    assert a.late == b.late

"""Event-time windows: assignment, watermark and grace, late events, panes, idle close."""

from __future__ import annotations

import collections
import operator
import random
import statistics

import orjson
import pytest

from streams.aggregates import Aggregate
from streams.windows import WindowConfigError, Windows, WindowSpec, parse_windows

MIN = 60_000


def _w(grace=10_000, windows="1m", idle_ms=5_000):
    return Windows(parse_windows(windows), grace_ms=grace, partition=2, idle_ms=idle_ms)


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


def test_a_window_reports_exact_statistics_and_its_position():
    w = _w(grace=0)
    values = [3.0, 1.5, 9.0, 4.25, 7.0]
    for i, v in enumerate(values):
        _add(w, 1000 * i, value=v, ok=(i % 2 == 0))
    _add(w, MIN, value=None)
    rec = w.close_ready()[0]
    assert (rec.count, rec.errors, rec.min, rec.max, rec.label) == (5, 2, 1.5, 9.0, "1m")
    assert rec.mean == pytest.approx(statistics.fmean(values))
    assert rec.stddev == pytest.approx(statistics.pstdev(values))
    assert rec.p50 == pytest.approx(4.25, rel=0.01)
    message = rec.message()
    assert (message["window_end_ms"] - message["window_start_ms"], message["hop_ms"]) == (MIN, MIN)
    assert (message["partition"], message["error_rate"]) == (2, 0.4)
    assert sum(message["sketch_pos"].values()) == 5


def test_parse_windows_accepts_tumbling_and_hopping_lists():
    specs = parse_windows("1h, 1m,5m/1m,5m, 1m")
    assert [s.label for s in specs] == ["1m", "5m", "5m/1m", "1h"]
    assert WindowSpec(300_000, 60_000) in specs


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no window"),
        ("1x", "not a duration"),
        ("0m", "not a duration"),
        ("5m/2m", "divide"),
        ("1m/5m", "divide"),
    ],
)
def test_a_bad_window_list_says_what_is_wrong(text, why):
    with pytest.raises(WindowConfigError, match=why):
        parse_windows(text)


def _recount(events, spec):
    """Every window of ``spec`` that holds at least one event, counted from scratch."""
    out = collections.defaultdict(list)
    for series, ts, value in events:
        first_end = (ts // spec.hop_ms + 1) * spec.hop_ms
        end = first_end
        while end - spec.width_ms <= ts:
            out[(series, end - spec.width_ms, end)].append(value)
            end += spec.hop_ms
    return out


def test_tumbling_and_hopping_windows_from_panes_equal_a_recount():
    rng = random.Random(11)
    w = _w(grace=20_000, windows="1m,5m,5m/1m,15m/5m")
    events = []
    ts = 0
    for _ in range(6000):
        ts += rng.randrange(0, 400)
        event_ts = max(ts - rng.randrange(0, 15_000), 0)  # out of order, within grace
        series = f"s{rng.randrange(4)}"
        value = rng.lognormvariate(1, 1)
        assert _add(w, event_ts, value=value, series=series)
        events.append((series, event_ts, value))
    closed = w.close_ready()
    _add(w, 10 * 24 * 3600 * 1000, series="end")  # far ahead: everything closes
    closed += [r for r in w.close_ready() if r.series != "end"]
    _assert_recounted(closed, events, "1m,5m,5m/1m,15m/5m")


def _assert_recounted(closed, events, windows):
    """``closed`` holds every window of ``windows`` that ``events`` fall in, no other,
    each with the figures of a count from scratch."""
    for spec in parse_windows(windows):
        expected = _recount(events, spec)
        got = {(r.series, r.start_ms, r.end_ms): r for r in closed if r.label == spec.label}
        assert set(got) == set(expected), spec.label
        for key, values in expected.items():
            rec = got[key]
            one_pass = Aggregate()
            for v in values:
                one_pass.add(v, None)
            assert (rec.count, rec.min, rec.max) == (len(values), min(values), max(values))
            assert [rec.p50, rec.p95, rec.p99] == one_pass.sketch.quantiles((0.5, 0.95, 0.99))
            assert rec.mean == pytest.approx(statistics.fmean(values), rel=1e-9)
            assert rec.stddev == pytest.approx(statistics.pstdev(values), rel=1e-6, abs=1e-9)
            assert rec.hop_ms == spec.hop_ms


def test_windows_of_many_sparse_series_equal_a_recount_across_a_snapshot():
    """Most series have one pane in a window: the windows share that pane's aggregate
    until a second pane comes, and a snapshot taken meanwhile restores each its own."""
    rng = random.Random(5)
    windows = "1m,5m,5m/1m,15m/5m"
    w = _w(grace=20_000, windows=windows)
    events, closed = [], []
    for i in range(3000):
        event_ts = i * 200 + rng.randrange(0, 15_000)  # out of order, within grace
        series = f"s{rng.randrange(400)}"  # about one event a series in 5 minutes
        value = rng.choice([rng.lognormvariate(1, 1), float(rng.randrange(3))])
        assert _add(w, event_ts, value=value, series=series)
        events.append((series, event_ts, value))
        if i % 500 == 499:
            closed += w.close_ready()
        if i == 1700:  # panes shared by open windows, and windows that hold a copy
            w = Windows.restore(w.snapshot(), parse_windows(windows), grace_ms=20_000, partition=2)
    _add(w, 10 * 24 * 3600 * 1000, series="end")
    closed += [r for r in w.close_ready() if r.series != "end"]
    _assert_recounted(closed, events, windows)


def test_a_pane_has_the_figures_of_its_values_added_one_by_one_bit_for_bit():
    """A pane keeps its values aside and takes them into its figures when something
    reads it (its close, a snapshot, a look at the open windows): the figures are the
    same floats as adding each value as it came, wherever the reads fall."""
    rng = random.Random(9)
    w, events = _w(grace=0, windows="1m"), []
    for i in range(4000):
        ts = i * 45  # three minutes; 40 values a pane (past the sketch's exact values)
        series = f"s{rng.randrange(3)}"
        value = rng.choice([rng.lognormvariate(5, 2), -rng.random(), 0.0, 1e9 + rng.random()])
        ok = rng.choice([True, False, None])
        assert _add(w, ts, value=value, ok=ok, series=series)
        events.append((series, ts, value, ok))
        if i % 301 == 7:
            w.snapshot()
        if i % 277 == 5:
            w.open_series(series)
    _add(w, 10 * MIN, series="end")
    closed = [r for r in w.close_ready() if r.series != "end"]
    panes = collections.defaultdict(Aggregate)
    for series, ts, value, ok in events:
        panes[(series, ts // MIN * MIN)].add(value, ok)
    assert {(r.series, r.start_ms) for r in closed} == set(panes)
    for r in closed:
        one = panes[(r.series, r.start_ms)]
        figures = (r.count, r.errors, r.values, r.sum, r.mean, r.min, r.max, r.stddev)
        assert figures == one.figures()[:8]
        assert r.sketch == one.sketch.buckets()


def test_an_idle_partition_closes_its_windows_by_the_wall_clock():
    w = _w(grace=30_000, idle_ms=5_000)
    start = 10 * MIN
    _add(w, start + 1_000)
    w.arrived(now_ms=start + 2_000)
    w.tick(now_ms=start + 4_000)  # not idle long enough
    assert w.max_ts == start + 1_000
    w.tick(now_ms=start + 60_000)
    assert w.close_ready() == []  # event time moved 58 s: watermark 29 s short of the end
    w.tick(now_ms=start + 92_000)
    [rec] = w.close_ready()
    assert (rec.start_ms, rec.count) == (start, 1)


def test_the_idle_advance_never_passes_the_wall_clock():
    w = _w(grace=0, idle_ms=1_000)
    future = 50 * MIN
    _add(w, future)
    w.arrived(now_ms=10 * MIN)  # an event stamped 40 minutes ahead of the wall clock
    w.tick(now_ms=20 * MIN)
    assert w.max_ts == future
    old = _w(grace=0, idle_ms=1_000)  # replaying old data: event time follows the idle time
    _add(old, MIN)
    old.arrived(now_ms=100 * MIN)
    old.tick(now_ms=100 * MIN + 30_000)
    assert old.max_ts == MIN + 30_000


def test_a_snapshot_restores_panes_partials_and_late_counts():
    a = _w(windows="1m,5m/1m")
    for i in range(500):
        _add(a, i * 700, value=float(i % 13), ok=i % 7 != 0, series=f"s{i % 3}")
    a.close_ready()
    _add(a, 0, series="s9")  # late
    b = Windows.restore(a.snapshot(), parse_windows("1m,5m/1m"), grace_ms=10_000, partition=2)
    for w in (a, b):
        _add(w, 30 * MIN)
    assert a.close_ready() == b.close_ready()
    assert a.late == b.late == {"s9": 1}


def test_a_snapshot_names_each_series_once_and_one_of_before_that_restores_the_same():
    """Rows name their series' place in ``series``; a snapshot written before that
    (each row with the series' key, kind, service and name) still restores."""
    windows = "1m,5m,5m/1m"
    a = _w(windows=windows)
    for i in range(900):
        a.add(
            f"s{i % 7}", "metric", f"svc{i % 7 % 2}", "n", ts=i * 700, value=float(i % 13), ok=None
        )
        if i % 200 == 199:
            a.close_ready()
    new = orjson.loads(orjson.dumps(a.snapshot()))
    names = new["series"]
    assert sorted(s for s, *_ in names) == [f"s{i}" for i in range(7)]
    assert {(s, service) for s, _, service, _ in names} == {
        (f"s{i}", f"svc{i % 2}") for i in range(7)
    }
    old = {k: v for k, v in new.items() if k != "series"}
    old["panes"] = [[end, *names[i], agg] for end, i, agg in new["panes"]]
    old["partials"] = [[end, wd, hop, *names[i], agg] for end, wd, hop, i, agg in new["partials"]]
    assert old["panes"] and old["partials"] and new["shared"]
    b, c = (
        Windows.restore(d, parse_windows(windows), grace_ms=10_000, partition=2) for d in (new, old)
    )
    for w in (a, b, c):
        _add(w, 30 * MIN)
    closed = a.close_ready()
    assert len(closed) > 20 and b.close_ready() == closed and c.close_ready() == closed


def test_a_snapshot_with_other_panes_is_refused_and_dropped_windows_are_not_emitted():
    a = _w(windows="1m,5m/1m")
    _add(a, 1000)
    with pytest.raises(WindowConfigError, match="panes"):
        Windows.restore(a.snapshot(), parse_windows("5m"), grace_ms=10_000, partition=2)
    b = Windows.restore(a.snapshot(), parse_windows("1m"), grace_ms=10_000, partition=2)
    _add(b, 30 * MIN)
    assert {r.label for r in b.close_ready()} == {"1m"}


def test_open_series_shows_the_figures_so_far():
    w = _w(windows="1m,5m")
    for v in (1.0, 3.0):
        _add(w, 1000, value=v)
    _add(w, MIN + 45_000, value=9.0)  # watermark 95 s: the first pane closes into 5m
    w.close_ready()
    views = w.open_series("s")
    assert [(v["window"], v["count"]) for v in views] == [("1m", 1), ("5m", 2)]
    assert views[1]["mean"] == 2.0
    assert w.open_series("nothing") == []


def test_an_event_whose_window_ends_exactly_at_the_watermark_is_late():
    w = Windows(parse_windows("1m"), grace_ms=0, partition=0)
    assert w.add("s", "metric", "a", "b", ts=60_000, value=1.0, ok=None)
    assert not w.add("s", "metric", "a", "b", ts=59_999, value=1.0, ok=None)
    assert w.late == {"s": 1}


def test_an_idle_partition_follows_the_wall_clock_from_exactly_its_idle_time():
    w = Windows(parse_windows("1m"), grace_ms=0, partition=0, idle_ms=5_000)
    w.add("s", "metric", "a", "b", ts=10_000, value=1.0, ok=None)
    w.arrived(100_000)
    w.tick(104_999)
    assert w.max_ts == 10_000
    w.tick(105_000)
    assert w.max_ts == 15_000


def test_open_series_gives_each_open_window_its_own_start_and_end():
    w = Windows(parse_windows("1m,5m/1m"), grace_ms=0, partition=0)
    w.add("s", "metric", "a", "b", ts=61_000, value=2.0, ok=None)
    w.add("s", "metric", "a", "b", ts=130_000, value=4.0, ok=None)  # closes the first minute
    w.close_ready()
    shown = [(v["window"], v["start_ms"], v["end_ms"], v["count"]) for v in w.open_series("s")]
    assert ("1m", 120_000, 180_000, 1) in shown
    assert ("5m/1m", -120_000, 180_000, 1) in shown  # the closed minute, folded in
    assert all(v["end_ms"] - v["start_ms"] == (60_000 if v["window"] == "1m" else 300_000)
               for v in w.open_series("s"))  # fmt: skip


def test_a_shared_pane_is_written_once_and_a_snapshot_of_before_sharing_restores():
    windows = "1m,5m,5m/1m"
    w = _w(grace=0, windows=windows)
    for i in range(40):  # one event a series: each pane is the only one of its windows
        _add(w, i * 1_000, value=float(i), series=f"s{i}")
    _add(w, 61_000, series="clock")  # the first minute closes; its panes fold
    w.close_ready()
    data = w.snapshot()
    places = [row[-1] for row in data["partials"] if row[3] != "clock"]
    # 5m, and the four 5m/1m windows still open (the one ending at 1m closed)
    assert len(data["shared"]) == 40 and len(places) == 40 * 5
    assert sorted(set(places)) == list(range(40))
    before = dict(data)  # as a worker of before sharing wrote it: every window in full
    before["partials"] = [
        [*row[:-1], data["shared"][row[-1]] if isinstance(row[-1], int) else row[-1]]
        for row in data["partials"]
    ]
    del before["shared"]
    restored = [
        Windows.restore(d, parse_windows(windows), grace_ms=0, partition=2) for d in (data, before)
    ]
    for r in (w, *restored):
        _add(r, 62_000, value=100.0, series="s3")  # a second pane for some of s3's windows
        _add(r, 30 * MIN, series="clock")
    closed = [r.close_ready() for r in (w, *restored)]
    assert closed[0] == closed[1] == closed[2]
    assert len(closed[0]) >= 40 * 5


@pytest.mark.parametrize("windows", ["5m,5m/1m", "1m,10m,10m/2m,10m/5m,1h"])
def test_windows_that_other_windows_contain_close_as_if_each_were_alone(windows):
    """A window that a hopping window of the same width also is (each 5m window is the
    5m/1m window that ends with it) closes with the figures, open views and snapshots it
    has when its spec is the only one built from the same 1m panes: nothing missing,
    nothing extra."""
    rng = random.Random(7)
    events = sorted(
        (rng.randrange(130 * MIN), rng.choice("abc"), rng.choice((rng.random() * 50, -3.0, 0.0)))
        for _ in range(900)
    )
    specs = parse_windows(windows)
    labels = {s.label for s in specs if s.width_ms > MIN}
    together = _w(grace=20_000, windows=windows)
    alone = {s.label: _w(grace=20_000, windows=f"1m,{s.label}") for s in specs}
    closed: list = []
    expected: list = []
    for i, (ts, series, value) in enumerate(events):
        for w in (together, *alone.values()):
            _add(w, ts, value=value, series=series)
        if i % 97 == 0:  # mid-window: a snapshot restored, and the open windows as shown
            data = orjson.loads(orjson.dumps(together.snapshot()))
            together = Windows.restore(data, specs, grace_ms=20_000, partition=2)
            views = [v for v in together.open_series(series) if v["window"] in labels]
            assert sorted(map(repr, views)) == sorted(
                repr(v)
                for label, w in alone.items()
                for v in w.open_series(series)
                if v["window"] == label and label in labels
            )
        closed += together.close_ready()
        expected += [r for label, w in alone.items() for r in w.close_ready() if r.label == label]
    assert any(r.values > 1 for r in closed) and labels <= {r.label for r in closed}
    key = operator.attrgetter("label", "end_ms", "series")
    assert sorted(closed, key=key) == sorted(expected, key=key)

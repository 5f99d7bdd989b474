"""The quantile sketch and the window aggregate: accuracy, merging, stability."""

from __future__ import annotations

import math
import random
import statistics
from fractions import Fraction

import pytest

from streams.aggregates import Aggregate
from streams.sketch import EXACT_MAX, MAX_BUCKETS, RELATIVE_ACCURACY, QuantileSketch
from streams.windows import SeriesAggregate

QS = (0.5, 0.95, 0.99)


def _exact(values: list[float], q: float) -> float:
    """The sketch's rank rule, on the sorted values: index floor(q * (n - 1))."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def _datasets() -> dict[str, list[float]]:
    rng = random.Random(7)
    return {
        "lognormal": [rng.lognormvariate(3.0, 1.2) for _ in range(50_000)],
        "bimodal": [
            rng.gauss(20.0, 2.0) if rng.random() < 0.7 else rng.gauss(900.0, 50.0)
            for _ in range(50_000)
        ],
        "constant": [42.5] * 10_000,
        "signed": [rng.gauss(0.0, 100.0) for _ in range(20_000)] + [0.0] * 500,
    }


@pytest.mark.parametrize("name", ["lognormal", "bimodal", "constant", "signed"])
def test_quantiles_are_within_one_percent_of_exact(name):
    values = _datasets()[name]
    sketch = QuantileSketch()
    for v in values:
        sketch.add(v)
    # Below the median too: the negative store is read from its most negative bucket.
    for q in (0.01, 0.05, 0.25, *QS):
        exact, estimate = _exact(values, q), sketch.quantile(q)
        assert abs(estimate - exact) <= RELATIVE_ACCURACY * abs(exact) + 1e-12, (q, exact)
    assert sketch.quantile(0.0) == min(values) and sketch.quantile(1.0) == max(values)


def test_constant_data_comes_back_exact():
    sketch = QuantileSketch()
    for _ in range(100):
        sketch.add(0.123)
    assert sketch.quantiles(QS) == [0.123, 0.123, 0.123]


def _bins(s: QuantileSketch):
    return (s.count, s.zeros, s.min, s.max, sorted(s.positive.items()), sorted(s.negative.items()))


def test_merging_parts_in_any_order_equals_one_pass():
    values = _datasets()["signed"]
    whole = QuantileSketch()
    for v in values:
        whole.add(v)
    parts = [QuantileSketch() for _ in range(7)]
    rng = random.Random(1)
    for v in values:
        parts[rng.randrange(7)].add(v)
    rng.shuffle(parts)
    merged = QuantileSketch()
    for p in parts:
        merged.merge(p)
    assert _bins(merged) == _bins(whole)


def test_a_sketch_round_trips_through_its_json_form():
    sketch = QuantileSketch()
    for v in _datasets()["signed"][:3000]:
        sketch.add(v)
    assert _bins(QuantileSketch.from_list(sketch.to_list())) == _bins(sketch)
    assert QuantileSketch.from_list(QuantileSketch().to_list()).quantile(0.5) is None


def test_a_store_with_too_many_buckets_collapses_its_lowest_and_keeps_its_count():
    sketch = QuantileSketch()
    values = [1.0203**i for i in range(3 * MAX_BUCKETS)]  # about one bucket per value
    for v in values:
        sketch.add(v)
    assert len(sketch.positive) <= MAX_BUCKETS and sketch.count == len(values)
    # High quantiles live in buckets that were never collapsed: still within 1%.
    assert abs(sketch.quantile(0.99) - _exact(values, 0.99)) <= 0.01 * _exact(values, 0.99)


def test_a_quantile_outside_zero_one_is_refused():
    sketch = QuantileSketch()
    sketch.add(1.0)
    with pytest.raises(ValueError, match="within"):
        sketch.quantile(1.5)


def test_stddev_stays_exact_on_values_with_a_large_common_offset():
    rng = random.Random(3)
    values = [1e9 + rng.random() for _ in range(100_000)]
    agg = Aggregate()
    for v in values:
        agg.add(v, ok=None)
    exact = [Fraction(v) for v in values]
    mean = sum(exact) / len(exact)
    pstdev = math.sqrt(float(sum((v - mean) ** 2 for v in exact) / len(exact)))
    assert agg.stddev == pytest.approx(pstdev, rel=1e-6)
    naive = sum(v * v for v in values) / len(values) - (sum(values) / len(values)) ** 2
    assert abs(math.sqrt(max(naive, 0.0)) - pstdev) > 0.01, "the naive formula would fail here"


def test_merging_aggregates_equals_one_pass():
    rng = random.Random(5)
    events = [(rng.lognormvariate(2, 1), rng.random() > 0.1) for _ in range(10_000)]
    events += [(None, False)] * 50  # events without a value still count, and err
    whole = Aggregate()
    for v, ok in events:
        whole.add(v, ok)
    parts = [Aggregate() for _ in range(5)]
    for i, (v, ok) in enumerate(events):
        parts[i % 5].add(v, ok)
    merged = Aggregate()
    for p in parts:
        merged.merge(p)
    a, b = merged.summary(), whole.summary()
    for key in ("count", "errors", "values", "min", "max", "p50", "p95", "p99"):
        assert a[key] == b[key], key
    for key in ("sum", "mean", "stddev", "error_rate"):
        assert a[key] == pytest.approx(b[key], rel=1e-12), key
    values = [v for v, _ in events if v is not None]
    assert b["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert b["stddev"] == pytest.approx(statistics.pstdev(values), rel=1e-9)


def test_an_aggregate_without_values_reports_counts_only():
    agg = Aggregate()
    agg.add(None, ok=False)
    agg.add(None, ok=True)
    s = agg.summary()
    assert (s["count"], s["errors"], s["error_rate"], s["values"]) == (2, 1, 0.5, 0)
    assert s["mean"] is s["stddev"] is s["p50"] is s["min"] is None
    assert Aggregate.from_list(agg.to_list()).summary() == s


def test_a_few_values_are_kept_exact_and_give_exact_quantiles():
    sketch = QuantileSketch()
    values = [5.0, -1.0, 0.0, 2.5, 9.75]
    for v in values:
        sketch.add(v)
    assert sketch.exact is not None
    assert sketch.quantiles(QS) == [_exact(values, q) for q in QS]
    back = QuantileSketch.from_list(sketch.to_list())
    assert back.quantiles(QS) == sketch.quantiles(QS) and back.count == 5
    zeros, pos, neg = sketch.buckets()
    assert zeros == 1 and sum(pos.values()) == 3 and sum(neg.values()) == 1


@pytest.mark.parametrize("sizes", [(10, 10), (20, 20), (5, 400), (400, 5), (EXACT_MAX, 1)])
def test_merging_exact_and_bucketed_sketches_equals_one_pass(sizes):
    rng = random.Random(sum(sizes))
    parts = [[rng.lognormvariate(1, 2) for _ in range(n)] for n in sizes]
    whole = QuantileSketch()
    for v in parts[0] + parts[1]:
        whole.add(v)
    a, b = QuantileSketch(), QuantileSketch()
    for sketch, values in ((a, parts[0]), (b, parts[1])):
        for v in values:
            sketch.add(v)
    a.merge(b)
    assert a.buckets() == whole.buckets() and a.count == whole.count
    assert a.quantiles(QS) == whole.quantiles(QS)


@pytest.mark.parametrize("name", ["lognormal", "bimodal", "constant", "signed"])
def test_quantiles_at_once_equal_each_quantile_alone(name):
    sketch = QuantileSketch()
    for v in _datasets()[name][:5000]:
        sketch.add(v)
    qs = tuple(i / 200 for i in range(201))  # every rank region, the extremes included
    assert sketch.quantiles(qs) == [sketch.quantile(q) for q in qs]
    assert sketch.quantiles((0.99, 0.5)) == [sketch.quantile(0.99), sketch.quantile(0.5)]


@pytest.mark.parametrize("sizes", [(10, 10), (20, 20), (5, 400), (400, 5), (30, 30, 30)])
def test_merging_a_parts_kept_buckets_or_starting_bucketed_makes_the_same_sketch(sizes):
    """What the windows do with a closed pane (its buckets kept, a copy bucketed at
    once) gives the very sketch that merging values gives: counts, and bucket order."""
    rng = random.Random(len(sizes) * 100 + sum(sizes))
    parts = []
    for n in sizes:
        part = QuantileSketch()
        for _ in range(n):
            part.add(rng.choice((0.0, -1.0, 1.0)) * rng.lognormvariate(1, 2))
        parts.append(part)
    plain, kept, early = QuantileSketch(), QuantileSketch(), QuantileSketch.bucketed()
    for part in parts:
        plain.merge(part)
        kept.merge(part, part.buckets)
        early.merge(part, part.buckets)
    assert kept.to_list() == plain.to_list() and kept.count == plain.count
    if sum(sizes) > EXACT_MAX:
        assert early.to_list() == plain.to_list() and early.count == plain.count


@pytest.mark.parametrize("n", [0, 1, 5, EXACT_MAX, EXACT_MAX + 1, 300])
def test_a_sketchs_json_form_lists_its_buckets_and_exact_values(n):
    """[zeros, min, max, [key, count, ...] positive, the same negative, exact values]:
    the shortcut for a sketch that keeps its values writes the same as the long way."""
    rng = random.Random(n)
    sketch = QuantileSketch()
    for _ in range(n):
        sketch.add(rng.choice((0.0, -1.0, 1.0, 1.0)) * rng.lognormvariate(1, 2))
    flat = lambda store: [x for item in store.items() for x in item]  # noqa: E731
    expected = [
        sketch.zeros,
        sketch.min if n else None,
        sketch.max if n else None,
        flat(sketch.positive),
        flat(sketch.negative),
        list(sketch.exact) if sketch.exact is not None else None,
    ]
    assert sketch.to_list() == expected
    assert (sketch.exact is None) == (n > EXACT_MAX)


def test_a_series_aggregate_starts_as_an_empty_aggregate():
    """SeriesAggregate sets the aggregate's fields itself (no super() call per pane)."""
    fresh = SeriesAggregate("metric", "api", "latency_ms")
    empty = Aggregate()
    # A class compiled by mypyc (setup.py) lists its fields in __mypyc_attrs__, not
    # __slots__.
    fields = getattr(Aggregate, "__mypyc_attrs__", None) or Aggregate.__slots__
    assert set(fields) >= {"count", "errors", "sum", "mean", "m2", "sketch"}
    assert [getattr(fresh, f) for f in fields] == [getattr(empty, f) for f in fields]
    assert [type(getattr(fresh, f)) for f in fields] == [type(getattr(empty, f)) for f in fields]


def test_the_sum_is_the_sum_of_the_values_and_a_copy_is_independent():
    values = [1.5, -2.25, 10.0, 0.125]
    agg = Aggregate()
    for v in values:
        agg.add(v, ok=True)
    assert agg.summary()["sum"] == math.fsum(values)
    twin = agg.copy()
    assert twin.summary() == agg.summary()
    twin.add(100.0, ok=True)
    assert agg.summary()["sum"] == math.fsum(values) and twin.summary()["count"] == 5


def test_counts_merged_into_an_empty_aggregate_report_no_value_figures():
    counts_only = Aggregate()
    counts_only.add(None, ok=False)
    merged = Aggregate()
    merged.merge(counts_only)
    s = merged.summary()
    assert (s["count"], s["errors"], s["values"]) == (1, 1, 0)
    assert s["mean"] is s["min"] is s["max"] is None

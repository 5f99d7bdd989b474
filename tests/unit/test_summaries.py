"""The statistics the detector's parts keep (``streams.summaries``, ``streams.weekly``),
checked against their definitions with figures worked out here.

:class:`TailProbability` is how rare a value is in its own history: the likelihood's
rarity check and the repeats' run lengths read it. Mutation testing (``bench.mutation``
on these two modules with ``tests/unit/test_detection.py``) left most of :meth:`sf` unchecked:
a tail fitted with the variance's formula broken, or the second moment taking the last
bin alone, passed every test. These pin each branch of it to figures derived here.
"""

from __future__ import annotations

import json
import math

import pytest

from streams.detection import HOUR_MS
from streams.packing import pack, unpack
from streams.summaries import RollingMoments, TailProbability
from streams.weekly import BLOCK_MARGIN, BLOCKS, ERROR_RATE, WeekOffsets

#: The tail share of every histogram below.
TAIL = 0.05


def _octaves(values: list[float], tail: float = TAIL) -> TailProbability:
    """A histogram of bins one octave wide from 1 (``[1, 2)``, ``[2, 4)`` ... up to
    256, one bin below 1 and one from 256), with a history so long that every value
    weighs the same (to 1e-9), after ``values``."""
    t = TailProbability(history=10**12, tail=tail, low=1.0, high=256.0, bins=8)
    for v in values:
        t.add(v)
    return t


#: 95 values below 8: with five more from 8 up, the top 5% starts at u = 8 (to the float:
#: the bins' edges are ``low * exp(k * width)``, 7.999999999999998 here).
BODY = [1.5] * 50 + [3.0] * 30 + [6.0] * 15
#: Where an excess over 8 is measured from in a bin: its geometric middle.
MID_8_16, MID_64_128 = 8 * math.sqrt(2), 64 * math.sqrt(2)


def test_nothing_seen_yet_is_not_rare() -> None:
    assert TailProbability().sf(5.0) == 1.0


def test_within_the_history_sf_is_the_share_of_values_in_or_above_the_bin() -> None:
    t = _octaves([*BODY, *[12.0] * 5])
    assert t.sf(0.5) == pytest.approx(1.0)  # below the lowest edge
    assert t.sf(1.2) == pytest.approx(1.0)
    assert t.sf(2.5) == pytest.approx(0.50)  # the bin's share: 3.0 is in [2, 4) too
    assert t.sf(6.0) == pytest.approx(0.20)
    assert t.sf(8.0) == pytest.approx(0.05)  # at u: the tail's share


def test_past_the_history_one_bin_of_excesses_is_an_exponential_tail() -> None:
    """The excesses over u all fall in one bin: no spread to fit a shape to, so the tail
    is exponential with the mean excess as its scale, times the tail's share."""
    t = _octaves([*BODY, *[12.0] * 5])
    mean_excess = MID_8_16 - 8
    for s in (9.0, 16.0, 40.0):
        assert t.sf(s) == pytest.approx(TAIL * math.exp(-(s - 8) / mean_excess), rel=1e-9)


def test_past_the_history_a_heavy_tail_is_a_generalised_pareto_fitted_by_moments() -> None:
    """Excesses spread wider than an exponential's (variance above the mean squared):
    the generalised Pareto distribution with the moment estimators of Hosking and Wallis
    (1987), shape ``(1 - m^2 / v) / 2`` and scale ``m (m^2 / v + 1) / 2``."""
    t = _octaves([*BODY, *[12.0] * 4, 96.0])
    excesses = [MID_8_16 - 8] * 4 + [MID_64_128 - 8]
    m = sum(excesses) / 5
    v = sum(e * e for e in excesses) / 5 - m * m
    shape, scale = (1 - m * m / v) / 2, m * (m * m / v + 1) / 2
    assert 0.3 < shape < 0.35 and 13 < scale < 13.2  # a heavy tail, worked out by hand
    for s in (12.0, 20.0, 200.0, 2000.0):
        expected = TAIL * (1 + shape * (s - 8) / scale) ** (-1 / shape)
        assert t.sf(s) == pytest.approx(expected, rel=1e-9)
    assert t.sf(2000.0) > TAIL * math.exp(-(2000 - 8) / m)  # far above an exponential


def test_values_past_the_top_bin_are_taken_at_its_bound() -> None:
    """The bin from ``high`` up has no upper edge: its values count as ``high`` itself."""
    t = _octaves([*BODY, *[96.0] * 3, *[300.0] * 2])  # top 5%: [64, 128) and >= 256
    assert t.sf(64.0) == pytest.approx(0.05)
    excesses = [MID_64_128 - 64] * 3 + [256.0 - 64] * 2
    m = sum(excesses) / 5
    v = sum(e * e for e in excesses) / 5 - m * m
    assert v < m * m  # lighter than exponential (a shape below 0): read as exponential
    assert t.sf(100.0) == pytest.approx(TAIL * math.exp(-(100 - 64) / m), rel=1e-9)


def test_after_a_history_of_zeros_any_positive_value_is_beyond_it() -> None:
    t = _octaves([0.0] * 100)
    assert t.sf(0.0) == 1.0
    assert t.sf(0.5) == 0.0


def test_a_restored_tail_histogram_reads_as_the_one_saved() -> None:
    t = _octaves([*BODY, *[12.0] * 4, 96.0], tail=0.2)
    restored = TailProbability.restore(json.loads(json.dumps(t.to_json())))
    assert restored.to_json() == t.to_json()
    for s in (0.5, 2.5, 5.0, 12.0, 200.0):
        assert restored.sf(s) == t.sf(s)
    assert t.sf(5.0) != _octaves([*BODY, *[12.0] * 4, 96.0]).sf(5.0)  # the share matters


def test_damaged_states_are_refused_by_what_is_wrong() -> None:
    tail = _octaves([1.5]).to_json()
    with pytest.raises(ValueError, match="of 8 bins has 10 counts"):
        TailProbability.restore({**tail, "counts": tail["counts"][:-1]})
    moments = RollingMoments(20)
    moments.update(1.0)
    state = moments.to_json()
    with pytest.raises(ValueError, match="as many means and sums as counts"):
        RollingMoments.restore({**state, "counts": state["counts"][:-1]})
    week = WeekOffsets(hours=True)
    week.learn(1.0, 1.0, 0)
    saved = week.to_json()
    assert WeekOffsets.restore(saved).to_json() == saved
    with pytest.raises(ValueError, match="a week has 7 offsets, got 6"):
        WeekOffsets.restore({**saved, "offsets": pack([0.0] * 6)})
    with pytest.raises(ValueError, match=f"a week has {7 * BLOCKS} blocks, got {7 * BLOCKS - 1}"):
        WeekOffsets.restore({**saved, "blocks": pack([0.0] * (7 * BLOCKS - 1), "f")})


def test_a_blocks_visit_is_learned_as_the_mean_of_its_residuals_weighted_by_nearness() -> None:
    """Block ``b``'s centre is at ``2b + 1`` hours into the week. A value between two
    centres teaches both, each by how near it is (``1 - f`` and ``f`` of the way from the
    first), so a block's visit runs from the centre before its own to the one after, over
    two pairs of blocks. Its first week's visit is learned half (a mean of it and one of
    0). Here the hour before each block's centre holds 30 more than the hour after, and
    each 2 hours 10 more than the 2 before; nothing is clipped (a spread of 1,000), and
    the blocks are 0 until their visit is over."""
    w = WeekOffsets(hours=True)

    def value(at: int) -> float:
        return 10.0 * (at // (2 * HOUR_MS)) + (30.0 if at % (2 * HOUR_MS) < HOUR_MS else 0.0)

    times = range(0, 30 * HOUR_MS, 10 * 60_000)
    for at in times:
        w.learn(value(at) - w.offset(at), 1000.0, at)
    blocks = unpack(w.to_json()["blocks"], "f")
    for b in (4, 10):
        centre = (2 * b + 1) * HOUR_MS
        weights = [1 - abs(at - centre) / (2 * HOUR_MS) for at in times]
        near = [(wt, value(at)) for wt, at in zip(weights, times, strict=True) if wt > 0]
        mean = sum(wt * v for wt, v in near) / sum(wt for wt, _ in near)
        assert 10 * b < mean < 10 * b + 30  # both halves count
        assert blocks[b] == pytest.approx(0.5 * mean, rel=1e-6)


def test_old_values_fade_by_the_history_as_the_weights_are_renormalised() -> None:
    """Each value weighs ``1 / (1 - 1/history)`` times the one before (O(1) decay), and
    the weights are scaled back to 1 past 1e100: with a history of 2 that is every 333
    values or so. ``sf`` stays the decayed share: a value's weight halves each step."""
    t = TailProbability(history=2, low=1.0, high=256.0, bins=8)
    values = [1.5, 3.0, 6.0, 12.0, 24.0] * 200  # 1,000 values: renormalised 3 times
    for v in values:
        t.add(v)
    assert t.to_json()["weight"] < 1e100
    weights = [0.5 ** (len(values) - 1 - i) for i in range(len(values))]
    for s in (1.5, 3.0, 6.0, 12.0):
        share = sum(w for w, v in zip(weights, values, strict=True) if v >= s) / sum(weights)
        assert t.sf(s) == pytest.approx(share, rel=1e-9)


def test_the_lowest_and_highest_bins_begin_at_low_and_high() -> None:
    t = _octaves([0.5] * 50 + [1.0] * 45 + [256.0] * 5)
    assert t.sf(1.0) == pytest.approx(0.5)  # 1.0 is low: the first bin, not the one below
    assert t.sf(200.0) == pytest.approx(0.05)  # 256 is high: counted in the bin past the top


@pytest.mark.parametrize(
    "bad",
    [{"history": 1}, {"tail": 0.0}, {"tail": 1.0}, {"low": 0.0}, {"low": 2.0, "high": 2.0},
     {"bins": 1}],
)  # fmt: skip
def test_a_tail_histogram_that_cannot_work_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"history >= 2, tail in \(0, 1\), 0 < low < high"):
        TailProbability(**bad)  # type: ignore[arg-type]


def test_the_smallest_tail_histogram_works() -> None:
    t = TailProbability(history=2, tail=0.5, low=1.0, high=2.0, bins=2)
    t.add(1.5)
    assert t.sf(1.2) == 1.0


def test_a_week_without_a_time_adds_nothing() -> None:
    w = WeekOffsets.restore({**WeekOffsets().to_json(), "offsets": pack([5.0] * 7)})
    assert w.offset(0) == 5.0
    assert w.offset(None) == 0.0


def test_a_late_value_does_not_move_the_weeks_clock_back() -> None:
    w = WeekOffsets(hours=True)
    w.learn(1.0, 1.0, 10 * HOUR_MS)
    w.learn(1.0, 1.0, 9 * HOUR_MS)
    assert w.to_json()["at"] == 10 * HOUR_MS


def test_the_days_recent_error_is_the_mean_of_their_residuals() -> None:
    """While the blocks are not read, a residual is the days' own: their recent error
    is its exponentially weighted mean (``ERROR_RATE`` a value), whatever the blocks' is."""
    w = WeekOffsets(hours=True)
    for i in range(10):
        w.learn(2.0, 10.0, i * 5 * 60_000)
    days, blocks = w.to_json()["errors"]
    assert days == pytest.approx(2.0 * (1 - (1 - ERROR_RATE) ** 10), rel=1e-9)
    assert blocks > days  # the blocks' residuals also carry what the days learned


def test_at_exactly_the_margin_the_days_are_read() -> None:
    """The blocks are read only while their recent error is *below* ``BLOCK_MARGIN`` of
    the days' (the days learn from twelve times as many values each)."""
    state = WeekOffsets(hours=True).to_json()
    days = {**state, "offsets": pack([5.0] * 7), "blocks": pack([-3.0] * 7 * BLOCKS, "f")}
    assert WeekOffsets.restore({**days, "errors": [1.0, BLOCK_MARGIN]}).offset(0) == 5.0
    below = [1.0, BLOCK_MARGIN - 0.01]
    assert WeekOffsets.restore({**days, "errors": below}).offset(0) == -3.0

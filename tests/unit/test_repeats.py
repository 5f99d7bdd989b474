"""The repeats' score against its definition (``RepeatDetector``), figure by figure.

``tests/unit/test_detection.py`` checks what the repeats are for (a stuck sensor seen, a
series of small integers not flagged). Mutation testing of ``streams/detection.py``
found the figures under it unchecked: a floor of ``1 / (known - 1)`` or ``1 / (known +
2)`` instead of ``1 / (known + 1)``, a chance of a repeat of ``(repeated + 2) / (steps
+ 2)`` instead of ``+ 1``, the grace one value longer, and a state saved without the
robust runs restoring as if a run had been rare from its first step. Each passed every
test there. Here each is worked out from its definition.
"""

from __future__ import annotations

import random

import orjson
import pytest

from streams import detection
from streams.detection import REPEAT_FLOOR, RepeatDetector


def _learn(d: RepeatDetector, values: list[float]) -> None:
    for x in values:
        d.learn_one(x)


def _round_trip(d: RepeatDetector) -> RepeatDetector:
    restored = detection.restore(orjson.loads(orjson.dumps(d.to_json())))
    assert isinstance(restored, RepeatDetector)
    return restored


def test_a_repeat_scores_from_the_values_grace_th_value():
    d = RepeatDetector(grace=5)
    _learn(d, [1.0, 2.0, 3.0, 4.0])
    assert d.score_one(4.0) == 0.0  # four values: inside the grace
    d.learn_one(5.0)
    assert d.score_one(5.0) > 0.5  # five: a repeat where none has come yet


@pytest.mark.parametrize(("learned", "history"), [(40, 1000), (80, 50)])
def test_past_the_runs_the_history_holds_a_run_scores_the_floor_it_can_tell(learned, history):
    """Without the tail, a run longer than any the history holds scores ``1 - 1 / (known
    + 1)``: ``known`` values (the history's length at most) cannot tell a probability
    below one in ``known + 1``."""
    d = RepeatDetector(history=history, grace=10, extrapolate=False)
    _learn(d, [float(i % 7) for i in range(learned - 1)] + [3.5])  # never a repeat
    known = min(learned, history)
    assert d.score_one(3.5) == 1.0 - 1.0 / (known + 1)


def _alternating(n: int, rng: random.Random) -> list[float]:
    """Small integers repeating about a third of the time, never more than twice."""
    out: list[float] = []
    while len(out) < n:
        x = float(rng.randrange(1, 9))
        if out and x == out[-1]:
            x += 10.0
        out += [x, x] if rng.random() < 0.5 else [x]
    return out[:n]


@pytest.mark.parametrize(("learned", "history", "runs"), [(60, 1000, 11), (300, 200, 10)])
def test_past_the_runs_the_history_holds_a_run_scores_as_chance_repeats_would(
    learned, history, runs
):
    """With the tail, a run of ``r`` past the runs the history holds is scored ``p **
    r`` (between the floor and :data:`REPEAT_FLOOR`), ``p`` the odds of a repeat: the
    steps that repeated the one before, each weighted ``keep ** age`` (``keep = 1 - 1 /
    history``), against the steps' own weights, with one repeat and one change added
    (Laplace's rule: never 0 or 1). From the second step of the run: its first is a run
    of one, which the history holds."""
    values = _alternating(learned, random.Random(3))
    d = RepeatDetector(history=history, grace=30)
    stuck, keep = 99.0, 1.0 - 1.0 / history
    _learn(d, [*values, stuck])
    below_floor = 0
    for run in range(2, runs + 1):
        d.learn_one(stuck)
        seen = values + [stuck] * run
        n = len(seen)
        repeated = sum(keep ** (n - 1 - i) for i in range(1, n) if seen[i] == seen[i - 1])
        steps = sum(keep**age for age in range(n))
        p = (repeated + 1.0) / (steps + 2.0)
        floor = 1.0 / (min(n, history) + 1)
        expected = 1.0 - max(min(floor, p**run), REPEAT_FLOOR)
        assert d.score_one(stuck) == pytest.approx(expected, abs=1e-12)
        below_floor += REPEAT_FLOOR < p**run < floor
    assert below_floor >= 6  # where p itself is read, not the floor


def _stuck_after_changes(n: int, run: int) -> list[float]:
    return [float(i % 17) for i in range(n)] + [3.0] * run


@pytest.mark.parametrize("cut", [502, 520])
def test_a_state_without_robust_runs_restores_scoring_as_it_did(cut):
    """A run in a series that never repeats is rare from its third step: a detector
    without ``robust`` goes on scoring it for as long as it lasts (learning it, a little
    less rare each step), and its state restored does too (robust, it would stop at four
    times the length it became rare at; restored as if rare from its first step, from
    the fourth)."""
    values = _stuck_after_changes(500, 60)
    d = RepeatDetector()
    _learn(d, values[:cut])
    again = _round_trip(d)
    kept, restored = [], []
    for x in values[cut:]:
        kept.append(d.score_one(x))
        restored.append(again.score_one(x))
        d.learn_one(x)
        again.learn_one(x)
    assert restored == kept
    assert min(kept) > 0.99  # to the end of the run: nothing stopped it


def test_a_repeat_state_keeps_its_own_settings():
    d = RepeatDetector(history=300, grace=12, extrapolate=False)
    _learn(d, _stuck_after_changes(100, 5))
    again = _round_trip(d)
    assert (again.history, again.grace, again.extrapolate) == (300, 12, False)
    assert d.to_json()["runs"]["history"] == 300  # its runs decay over its history
    assert again.to_json() == d.to_json()


def test_a_rare_run_is_learned_up_to_twice_the_length_it_became_rare_at():
    """What the history holds after a rare run is what a run of exactly twice that
    length would have left: the steps past it are not learned."""
    values = _stuck_after_changes(500, 60)
    robust = RepeatDetector(robust=True)
    rare_at = 0
    for i, x in enumerate(values):
        if robust.score_one(x) >= detection.RARE_RUN and not rare_at:
            rare_at = i - 500 + 1  # the run's length with this step
        robust.learn_one(x)
    assert rare_at > 1 and 2 * rare_at < 60
    twin = RepeatDetector()
    _learn(twin, values[: 500 + 2 * rare_at])
    assert robust.to_json()["runs"] == twin.to_json()["runs"]
    shorter = RepeatDetector()
    _learn(shorter, values[: 500 + 2 * rare_at - 1])
    assert robust.to_json()["runs"] != shorter.to_json()["runs"]


def test_a_repeat_history_of_two_and_a_grace_of_one_are_the_least():
    assert RepeatDetector(history=2, grace=1).history == 2


@pytest.mark.parametrize(("history", "grace"), [(1, 1), (2, 0), (1, 0)])
def test_a_repeat_history_below_two_or_a_grace_below_one_is_refused(history, grace):
    with pytest.raises(ValueError, match="history must be >= 2 and grace >= 1"):
        RepeatDetector(history=history, grace=grace)

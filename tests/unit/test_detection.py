"""The contract every detector passes, and what each one is for."""

from __future__ import annotations

import math
import random

import orjson
import pytest

from streams import detection
from streams.detection import AnomalyLikelihood, GaussianDetector

FACTORIES = {
    "gaussian": lambda: GaussianDetector(window_size=200, grace_period=20),
    "likelihood": lambda: AnomalyLikelihood(
        GaussianDetector(window_size=200, grace_period=20), history=300, grace=50
    ),
}


def _series(seed: int, n: int = 600) -> list[float]:
    rng = random.Random(seed)
    out = [50.0 + 5 * math.sin(i / 20) + rng.gauss(0, 1) for i in range(n)]
    out[n // 2] = 200.0  # one obvious spike
    return out


def _feed(detector, values):
    scores = []
    for x in values:
        scores.append(detector.score_one(x))
        detector.learn_one(x)
    return scores


@pytest.fixture(params=sorted(FACTORIES))
def make(request):
    return FACTORIES[request.param]


def test_scores_stay_within_zero_and_one_whatever_the_input(make):
    weird = [math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0] * 20 + [7.0] * 300
    scores = _feed(make(), _series(1) + weird + _series(2))
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_a_detector_is_deterministic(make):
    assert _feed(make(), _series(3)) == _feed(make(), _series(3))


def test_state_round_trips_through_json_and_scores_go_on_the_same(make):
    values = _series(4)
    a = make()
    _feed(a, values[:400])
    b = detection.restore(orjson.loads(orjson.dumps(a.to_json())))
    assert _feed(b, values[400:]) == pytest.approx(_feed(a, values[400:]), rel=1e-9, abs=1e-12)


def test_an_obvious_spike_gets_the_highest_score(make):
    values = _series(5)
    scores = _feed(make(), values)
    spike = len(values) // 2
    assert scores[spike] > 0.9
    assert max(range(len(values)), key=scores.__getitem__) in range(spike, spike + 10)


def test_constant_data_is_not_anomalous(make):
    scores = _feed(make(), [3.0] * 500)
    assert max(scores[100:]) <= 0.5


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="gaussian"):
        detection.restore({"kind": "nope"})

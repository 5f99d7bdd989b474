"""A model's state stored as its differences from a frozen base (streams/modelbase.py)."""

from __future__ import annotations

import hashlib
import math
import random
from importlib import resources
from pathlib import Path

import numpy as np
import orjson
import pytest

from bench import synthetic
from streams import modelbase
from streams.detection import GaussianDetector, default_detector, restore

STEP_MS = 60_000
DATA = Path(__file__).parent / "data"

#: Base 1 as released; a base never changes (a new default is a new base).
BASE_1_SHA256 = "b2ca42e3d2fc96358e5f4c32ef7df8f0556acd1239662edf53e8eb17ac0a1f8b"


def _scores(detector, values, times):
    out = []
    for x, at in zip(values, times, strict=True):
        out.append(detector.score_one(x, at))
        detector.learn_one(x, at)
    return out


def _taught(detector, values, times):
    _scores(detector, values, times)
    return detector


def _histories():
    rng = random.Random(3)
    yield "new", default_detector(), [], []
    yield "in its warm-up", default_detector(), [100 + rng.gauss(0, 5) for _ in range(600)], None
    yield "about 100", default_detector(), [100 + rng.gauss(0, 5) for _ in range(3_000)], None
    yield "about 1e-5", default_detector(), [abs(rng.gauss(1e-5, 3e-6)) for _ in range(3_000)], None
    times, values, _ = synthetic.GENERATORS["scheduled"](np.random.default_rng(2), 2)
    yield "host gauge with jobs", default_detector(), values, times
    yield "without the forecast", default_detector(forecast=False), values, times
    yield "a Gaussian", GaussianDetector(), values, times


@pytest.mark.parametrize("name", [h[0] for h in _histories()])
def test_a_stored_model_restores_to_its_state_and_scores_on_as_the_one_saved(name):
    """Thin, restored, and fed the same values as the model it was saved from: the same
    whole state, and every score after to the bit."""
    _, detector, values, times = next(h for h in _histories() if h[0] == name)
    times = times if times is not None else [i * STEP_MS for i in range(len(values))]
    half = len(values) // 2
    saved = _taught(detector, values[:half], times[:half])
    state = saved.to_json()
    if name == "in its warm-up":  # the warm-up's history kept apart, where the base has none
        assert state["young"] is not None and modelbase.base(1)["young"] is None
    stored = orjson.loads(orjson.dumps(modelbase.thin(state)))
    again = restore(stored)
    assert again.to_json() == state
    rest, at = values[half:] or [1.0, 2.0], times[half:] or [0, STEP_MS]
    assert _scores(again, rest, at) == _scores(saved, rest, at)
    assert again.to_json() == saved.to_json()


def test_a_default_model_is_stored_in_about_a_kilobyte_less():
    d = _taught(default_detector(), [100 + 20 * math.sin(i / 200) for i in range(5_000)], [
        i * STEP_MS for i in range(5_000)
    ])  # fmt: skip
    whole = d.to_json()
    stored = modelbase.thin(whole)
    assert stored["base"] == modelbase.CURRENT and "base" not in whole
    assert len(orjson.dumps(whole)) - len(orjson.dumps(stored)) >= 1_000


def test_the_current_base_is_a_new_default_model():
    """A fresh default thins to its base's number alone: when a default changes, this
    fails until a new base is added (the old one kept for the states thinned against it)."""
    assert modelbase.thin(default_detector().to_json()) == {"base": modelbase.CURRENT}


def test_a_released_base_never_changes():
    text = resources.files("streams").joinpath("model_base_1.json").read_bytes()
    assert hashlib.sha256(text).hexdigest() == BASE_1_SHA256


def test_what_a_thin_state_leaves_out_comes_from_its_base_not_from_todays_defaults():
    """A thin state is read against the base it names: a parameter it left out is the
    base's, whatever is passed or configured now."""
    stored = modelbase.thin(default_detector().to_json())
    base = modelbase.base(stored["base"])
    assert restore(stored).to_json() == base
    assert restore({**stored, "grace": 7}).to_json() == {**base, "grace": 7}


def test_a_state_lacking_a_key_of_its_base_is_stored_whole_and_restores():
    """A state written before an option existed (here: before packing) has fewer keys
    than the base; leaving a value out could not be told from having the base's."""
    state = orjson.loads((DATA / "default_state_before_packing.json").read_bytes())["state"]
    assert modelbase.thin(state) is state
    assert restore(modelbase.thin(state)).to_json() == restore(state).to_json()


def test_a_state_naming_a_base_this_worker_does_not_know_is_refused():
    with pytest.raises(ValueError, match="unknown model base 99"):
        restore({"base": 99})


def test_a_value_the_base_holds_written_another_way_is_kept():
    """-0.0 where the base has 0.0, 1.0 where it has 1 (alone or in a list) are other
    JSON, kept as they are: a restored model gets the same bits and types."""
    state = default_detector().to_json()
    state["tail"] = {**state["tail"], "total": -0.0}
    state["history_moments"] = {**state["history_moments"], "counts": [0.0, 0.0]}
    state["grace"] = float(state["grace"])
    stored = modelbase.thin(state)
    assert stored["tail"] == {"total": -0.0} and stored["grace"] == 100.0
    assert stored["history_moments"] == {"counts": [0.0, 0.0]}
    assert orjson.dumps(modelbase.thick(stored)) == orjson.dumps(state)


def test_a_key_the_base_does_not_have_is_kept_whatever_its_value():
    state = {**default_detector().to_json(), "added": None, "more": {"n": 1}}
    stored = modelbase.thin(state)
    assert stored["added"] is None and stored["more"] == {"n": 1}
    assert modelbase.thick(stored) == state


def test_a_thin_state_whose_detectors_do_not_match_its_base_is_refused():
    """A damaged state (one detector where its base has four) is an error, not a model
    restored with three detectors left out."""
    stored = {"base": 1, "detector": {"detector": {"detectors": {"$each": [{}]}}}}
    with pytest.raises(ValueError):
        restore(stored)

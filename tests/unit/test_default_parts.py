"""Each keyword of ``default_detector`` takes out the part it names, and nothing else.

``bench/nab.py`` scores every combination of these keywords, and the README's table has a
column for each one turned off ("without the forecast", "without calm"...): those figures
say what a part is worth only if turning it off builds the detector without that part and
with every other part as it was. Mutation testing found several keywords that changed
nothing any test saw: the shift mean on whatever ``forecast_shift`` said, the daily jobs
with ``calm`` off, the likelihood's short history with ``long_memory`` off a step too long.

Here each detector is described by its parts, named by role (the raw scale's hour slots
and last values, the log view and what it holds, the repeats, the daily jobs' recurrence
and the likelihood), each part by its settings; the test compares a fresh default with
the one built with a keyword flipped, both ways (nothing missing, nothing extra).
"""

from __future__ import annotations

from typing import Any

import pytest

from streams.detection import CALM_HIGHEST, RAW_HIGHEST, default_detector

#: A part or setting that one side lacks (no setting's value is this object).
ABSENT = object()
#: In a difference: the whole part is on one side only.
WHOLE = "*"
WEEK_HOURS = ("week.blocks", "week.errors", "week.since", "week.visits")


def _settings(state: dict[str, Any]) -> dict[str, Any]:
    """A part's own keys, a nested state (its week, its tail) flattened a level, without
    the detectors it wraps."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key in ("detector", "detectors"):
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def parts(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The detector's parts by role, each with its settings (:func:`_settings`)."""
    out = {"likelihood": _settings(state)}
    inner = state["detector"]
    if inner["kind"] == "recurrence":
        out["recurrence"] = _settings(inner)
        inner = inner["detector"]
    assert inner["kind"] == "max"
    for part in inner["detectors"]:
        if part["kind"] == "log":
            out["log"] = _settings(part)
            for sub in part["detector"]["detectors"]:
                out[f"log {sub['kind']}"] = _settings(sub)
        else:
            out[part["kind"]] = _settings(part)
    return out


def difference(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> set[tuple[str, str]]:
    """``(part, setting)`` where ``a`` and ``b`` differ; ``(part, WHOLE)`` for a part on one
    side only."""
    out = set()
    for name in a.keys() | b.keys():
        if name not in a or name not in b:
            out.add((name, WHOLE))
            continue
        for key in a[name].keys() | b[name].keys():
            if a[name].get(key, ABSENT) != b[name].get(key, ABSENT):
                out.add((name, key))
    return out


LOG_PARTS = {("log", WHOLE), ("log seasonal", WHOLE), ("log gaussian", WHOLE)}
#: Each keyword turned off: what differs from the default.
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "log_view": LOG_PARTS | {("log forecast", WHOLE), ("likelihood", "scores")},
    "repeats": {("repeats", WHOLE), ("likelihood", "scores")},
    "repeat_tail": {("repeats", "extrapolate"), ("repeats", "robust"), ("repeats", "rare")},
    "robust": {("likelihood", "robust")},
    "long_memory": {
        ("likelihood", "history"),
        ("likelihood", "warmup"),
        ("likelihood", "history_moments.size"),
        ("likelihood", "tail.history"),
    },
    "forecast": {("log forecast", WHOLE), ("likelihood", "scores")},
    "forecast_shift": {
        ("log forecast", key) for key in ("shift_alpha", "visit_share", "shift", "shift_var", "at")
    },
    "raw_cap": {("seasonal", "highest"), ("gaussian", "highest")},
    "student": {("seasonal", "student"), ("log seasonal", "student")},
    "calm": {
        ("seasonal", "highest"),
        ("gaussian", "highest"),
        ("repeats", "continuation"),
        ("recurrence", WHOLE),
        ("likelihood", "jobs"),
    }
    | {
        (part, key)
        for part in ("seasonal", "log seasonal", "log forecast")
        for key in ("week.offsets", "week.at", *WEEK_HOURS)
    },
    "week_hours": {
        (part, key) for part in ("seasonal", "log seasonal", "log forecast") for key in WEEK_HOURS
    },
    "daily_jobs": {("recurrence", WHOLE), ("likelihood", "jobs")},
    "discount_jobs": {("likelihood", "jobs")},
    "jobs_unlearned": {("recurrence", "teach_jobs")},
}


@pytest.mark.parametrize("keyword", sorted(EXPECTED))
def test_a_keyword_turned_off_takes_out_its_part_and_nothing_else(keyword):
    default = parts(default_detector().to_json())
    without = parts(default_detector(**{keyword: False}).to_json())
    assert difference(default, without) == EXPECTED[keyword]


def test_the_parts_a_keyword_takes_out_are_the_ones_it_names():
    """What the differences above are, read off the parts themselves."""
    off = {k: parts(default_detector(**{k: False}).to_json()) for k in EXPECTED}
    default = parts(default_detector().to_json())
    assert default["likelihood"]["scores"] == 6  # Bonferroni: six raw scores
    assert off["log_view"]["likelihood"]["scores"] == 3
    assert off["repeats"]["likelihood"]["scores"] == off["forecast"]["likelihood"]["scores"] == 5
    shiftless = off["forecast_shift"]["log forecast"]
    assert shiftless["shift_alpha"] is None and shiftless["visit_share"] is None
    assert "shift" not in shiftless and "at" not in shiftless
    assert default["log forecast"]["shift_alpha"] == 0.15
    assert default["log forecast"]["visit_share"] == 0.5
    assert (default["likelihood"]["history"], default["likelihood"]["warmup"]) == (10_000, 200)
    short = off["long_memory"]["likelihood"]
    assert (short["history"], short["warmup"]) == (1000, 0)
    assert default["seasonal"]["highest"] == default["gaussian"]["highest"] == CALM_HIGHEST
    assert off["calm"]["seasonal"]["highest"] == off["calm"]["gaussian"]["highest"] == RAW_HIGHEST
    assert "highest" not in off["raw_cap"]["seasonal"]  # uncapped: 1.0, not written
    assert default["repeats"]["extrapolate"] and default["repeats"]["robust"]
    assert not off["repeat_tail"]["repeats"]["extrapolate"]
    assert "robust" not in off["repeat_tail"]["repeats"]
    assert default["recurrence"]["teach_jobs"] is False  # the jobs unlearned
    assert "teach_jobs" not in off["jobs_unlearned"]["recurrence"]  # taught: not written
    assert default["likelihood"]["jobs"] == 0  # discounting: its bits, none set yet
    for keyword in ("discount_jobs", "daily_jobs", "calm"):
        assert off[keyword]["likelihood"]["jobs"] is None  # nothing to discount


def test_the_chance_check_off_takes_the_jobs_discount_with_it():
    """Discounting the jobs is a part of the chance check: without the check there is
    nothing to discount them in."""
    default = parts(default_detector().to_json())
    without = parts(default_detector(chance=None).to_json())
    assert difference(default, without) == {("likelihood", "chance"), ("likelihood", "jobs")}
    assert without["likelihood"]["chance"] is None and without["likelihood"]["jobs"] is None

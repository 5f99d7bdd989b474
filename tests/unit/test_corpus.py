"""``bench/corpus.py``'s shared raw pass: the grid of ``bench/nab.py`` runs each raw
detector once a file and replays its scores to the likelihoods over it; every candidate
must alert exactly as it does when run whole."""

from __future__ import annotations

import collections

import numpy as np
import orjson
import pytest

from bench import corpus, nab, synthetic
from streams import backtest
from streams.detection import GaussianDetector


def _rows(shape: str, seed: int) -> list[tuple[str, float]]:
    times, values, _ = synthetic.GENERATORS[shape](np.random.default_rng(seed), 2)
    return [(synthetic._stamp(t), v) for t, v in zip(times, values, strict=True)]


def _run(name: str, rows: list[tuple[str, float]], raw: list[float] | None = None) -> list:
    make, policy = nab.lookup(name)
    detector = make()
    if raw is not None:
        detector.detector = corpus.Replay(raw)
    return list(backtest.run(rows, detector, policy))


def test_the_grid_shares_a_raw_detector_only_among_candidates_that_build_the_same_one():
    """A group's candidates build one raw detector (a fresh one's state says how it is
    built), and no two groups build the same."""
    groups = collections.defaultdict(set)
    for name in nab.CANDIDATES:
        raw = nab.lookup(name)[0]().detector
        groups[nab.raw_key(name)].add(orjson.dumps(raw.to_json()))
    assert len(groups) == 48 and all(len(built) == 1 for built in groups.values())
    assert len({built.pop() for built in groups.values()}) == 48


@pytest.mark.parametrize("shape, seed", [("hourly", 1), ("traffic", 2)])
def test_replayed_raw_scores_give_every_candidate_of_a_group_the_same_scores_and_alerts(
    shape, seed
):
    """The default's group (its likelihood, span, rarity, memory and confirmation choices
    turned every way) over a series with anomalies: scores and alerts to the bit."""
    rows = _rows(shape, seed)
    names = [name for name in nab.CANDIDATES if nab.raw_key(name) == nab.raw_key(nab.DEFAULT)]
    raw = corpus.raw_scores(nab.lookup(names[0])[0](), rows)
    alerts = 0
    for name in names:
        whole = _run(name, rows)
        assert _run(name, rows, raw) == whole
        alerts += sum(alert for *_, alert in whole)
    assert alerts > len(names)  # the comparison covers alerts, not just quiet rows


def test_a_shared_raw_pass_needs_a_likelihood():
    with pytest.raises(TypeError, match="needs a likelihood"):
        corpus.raw_scores(GaussianDetector(), [("2024-01-01 00:00:00", 1.0)])

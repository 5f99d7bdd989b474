"""``bench/corpus.py``'s shared raw pass: the grid of ``bench/nab.py`` runs each raw
detector once a file and replays its scores to the likelihoods over it; every candidate
must alert exactly as it does when run whole."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import numpy as np
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
        detector.detector = corpus.replay(detector.detector, raw)
    return list(backtest.run(rows, detector, policy))


#: The grid's choices that are the likelihood's and the alert policy's, not the raw
#: detector's, and the daily jobs, run again over the raw detector's recorded scores
#: (where they teach the raw detector their jobs: with the jobs unlearned, the daily
#: jobs are part of the raw pass).
NOT_RAW = {
    "3 h span", "rarity", "confirm", "robust", "long memory", "daily jobs", "chance",
    "discount jobs", "3 h hold",
}  # fmt: skip


def _group_of(name: str) -> list[str]:
    raw = corpus.raw_of(nab.lookup(name))
    return [other for other in nab.CANDIDATES if corpus.raw_of(nab.lookup(other)) == raw]


def test_the_grid_shares_a_raw_detector_only_among_candidates_that_build_the_same_one():
    """144 raw detectors (9 choices, some part of others) under 128 likelihoods and
    policies each, 320 where the daily jobs that teach it their jobs can be on (with
    calm: 128 without them, 128 with them and without the chance check or with it and
    without discounting the jobs, 64 discounting them); and the 96 with calm again under
    the daily jobs that keep their jobs from them, 192 each. The default's group (one of
    those) differs from it in the likelihood's and the policy's choices alone."""
    groups = collections.Counter(corpus.raw_of(nab.lookup(name)) for name in nab.CANDIDATES)
    assert len(groups) == 240 and sorted(collections.Counter(groups.values()).items()) == [
        (128, 48), (192, 96), (320, 96)
    ]  # fmt: skip
    default = dict(zip(nab.CHOICES, nab.CANDIDATES[nab.DEFAULT], strict=True))
    assert len(_group_of(nab.DEFAULT)) == 192
    for name in _group_of(nab.DEFAULT):
        on = zip(nab.CHOICES, nab.CANDIDATES[name], strict=True)
        assert {choice for choice, value in on if value != default[choice]} <= NOT_RAW - {
            "daily jobs"
        }


@pytest.mark.parametrize("shape, seed", [("hourly", 1), ("traffic", 2), ("scheduled", 7)])
def test_replayed_raw_scores_give_every_candidate_of_a_group_the_same_scores_and_alerts(
    shape, seed
):
    """The default's group (its likelihood, span, rarity, memory, chance, discount,
    confirmation and hold choices turned every way, under the daily jobs that keep their
    jobs from the raw detector: the host gauge has jobs they keep out) over a series with
    anomalies: scores and alerts to the bit."""
    rows = _rows(shape, seed)
    names = _group_of(nab.DEFAULT)
    raw = corpus.raw_scores(nab.lookup(names[0])[0](), rows)
    alerts = 0
    for name in names:
        whole = _run(name, rows)
        assert _run(name, rows, raw) == whole
        alerts += sum(alert for *_, alert in whole)
    assert alerts > len(names)  # the comparison covers alerts, not just quiet rows


def test_the_daily_jobs_run_again_over_one_recording_score_as_they_do_whole():
    """A host gauge with daily jobs: the default with the jobs learned, the same without
    discounting them and the default without the daily jobs score differently run whole, and
    each scores the same over the one recording of the raw detector they share, run
    value by value (the recurrence replayed) and through ``alerts_of``'s shared pass
    (the recurrence run once, its scheduled steps recorded for the likelihoods)."""
    rows = _rows("scheduled", 7)  # 5 alerts discounting the jobs, 13 counting them
    learned = nab._without("jobs unlearned")
    names = [learned, nab._without("jobs unlearned", "discount jobs"), nab._without("daily jobs")]
    assert len({corpus.raw_of(nab.lookup(name)) for name in names}) == 1
    raw = corpus.raw_scores(nab.lookup(names[0])[0](), rows)
    whole = [_run(name, rows) for name in names]
    assert len({str(run) for run in whole}) == 3
    assert [_run(name, rows, raw) for name in names] == whole
    variants = [nab.lookup(name) for name in names]
    shared = [alerts for alerts, _ in corpus.alerts_of(rows, variants, share_raw=True)]
    assert shared == [alerts for alerts, _ in corpus.alerts_of(rows, variants)]
    assert shared[0] != shared[1]  # the discount changed alerts, and the pass kept it


@pytest.mark.parametrize("shape, seed", [("latency", 3), ("bursty", 4)])
def test_a_group_scored_once_per_detector_alerts_as_each_candidate_run_whole(shape, seed):
    """The default's group through ``alerts_of`` with ``share_raw`` (one raw pass, and
    one likelihood run for each set of candidates that differ in the alert policy
    alone) against each candidate run whole: the same alert column, row for row."""
    rows = _rows(shape, seed)
    variants = [nab.lookup(name) for name in _group_of(nab.DEFAULT)]
    policies = {policy for _, policy in variants}
    assert len(policies) == 4  # confirmation and the hold on and off share a likelihood run
    shared = [alerts for alerts, _ in corpus.alerts_of(rows, variants, share_raw=True)]
    whole = [alerts for alerts, _ in corpus.alerts_of(rows, variants)]
    assert shared == whole
    assert sum(map(sum, whole)) > len(variants)  # alerts compared, not just quiet rows


def test_candidates_that_differ_in_the_chance_check_alone_alert_from_one_pass_as_whole():
    """The default and the default without the chance check over daily cycles (where
    the check holds back alerts): from one likelihood pass each alerts as it does run
    whole, and differently from the other."""
    for seed in range(8):
        rows = _rows("seasonal", seed)
        variants = [nab.lookup(name) for name in (nab.DEFAULT, nab._without("chance"))]
        whole = [alerts for alerts, _ in corpus.alerts_of(rows, variants)]
        if whole[0] != whole[1]:
            break
    else:
        pytest.fail("the chance check changed no alert on eight files")
    shared = [alerts for alerts, _ in corpus.alerts_of(rows, variants, share_raw=True)]
    assert shared == whole
    # The same with the candidate without the check first (its pass turns the check on).
    shared = [alerts for alerts, _ in corpus.alerts_of(rows, variants[::-1], share_raw=True)]
    assert shared == whole[::-1]


def test_alerts_over_stored_scores_are_the_alerts_of_a_run():
    """``backtest.alerts`` over a run's scores, under both policies of the grid: the
    run's alert column."""
    rows = _rows("drift", 5)
    for name in (nab.DEFAULT, nab.BEFORE):
        make, policy = nab.lookup(name)
        run = list(backtest.run(rows, make(), policy))
        scored = [(backtest.timestamp_ms(t), x, score) for t, x, score, _ in run]
        assert list(backtest.alerts(scored, policy)) == [alert for *_, alert in run]
        assert sum(alert for *_, alert in run) > 0


class _Scorer:
    """A stand-in for ``nab_score.py`` (which lies beside the repository, not in it):
    a file's "score" is a fingerprint of its alert column, so a candidate given another
    one's score or counts shows."""

    PROFILES = {"standard": 1.0, "reward_low_FP_rate": 2.0, "reward_low_FN_rate": 3.0}

    @staticmethod
    def norm_ts(t: str) -> str:
        return t

    @staticmethod
    def score_file(timestamps, alerts, windows, w):
        fired = [i for i, alert in enumerate(alerts) if alert]
        return w * sum(fired), len(fired), fired[0] if fired else -1, len(windows)


def test_a_group_scored_together_scores_each_candidate_as_it_scores_alone(tmp_path, monkeypatch):
    """``score_variants`` with ``share_raw`` (one raw pass, shared likelihood passes, and
    candidates whose alerts fall on the same rows scored once) against each candidate
    scored alone, run whole: every profile's score and every count, for the default's
    group over a file with anomalies and one without."""
    monkeypatch.setattr(corpus, "scorer", lambda shared: _Scorer)
    synthetic.write(tmp_path, 3)
    names = _group_of(nab.DEFAULT)
    for rel in ("hourly/hourly_1.csv", "quiet/seasonal_quiet.csv"):
        variants = [nab.lookup(name) for name in names]
        together = corpus.score_variants(tmp_path, tmp_path, rel, variants, share_raw=True)
        alone = [corpus.score_file(tmp_path, tmp_path, rel, variant) for variant in variants]

        def drop(counts: dict) -> dict:
            return {k: v for k, v in counts.items() if k != "seconds"}

        assert [(s, drop(c)) for s, c in together] == [(s, drop(c)) for s, c in alone]
        if rel.startswith("hourly"):  # candidates that alert apart, and alike
            distinct = {repr(s) for s, _ in alone}
            assert 1 < len(distinct) < len(names)


def test_a_shared_raw_pass_needs_a_likelihood():
    with pytest.raises(TypeError, match="needs a likelihood"):
        corpus.raw_scores(GaussianDetector(), [("2024-01-01 00:00:00", 1.0)])


class _Profiles:
    """NAB's profiles and its sigma, as ``nab_score.py`` has them (it lies beside the
    repository, not in it)."""

    PROFILES = {
        "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
        "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
        "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
    }

    @staticmethod
    def sigma(y: float) -> float:
        return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def _file(credit: float, alarms: float, missed: int, windows: int) -> dict:
    """A file's score under each profile for finds worth ``credit`` in all, false alarms
    costing ``alarms`` before their weight, and ``missed`` windows of ``windows``."""
    return {
        profile: (w["tp"] * credit - w["fp"] * alarms - w["fn"] * missed, windows)
        for profile, w in _Profiles.PROFILES.items()
    }


def test_the_points_lost_are_read_back_by_cause_and_add_up_to_what_the_score_lacks(monkeypatch):
    monkeypatch.setattr(corpus, "scorer", lambda shared: _Profiles)
    top, label = _Profiles.sigma(-1.0), _Profiles.sigma(-0.5)
    files = [
        _file(credit=top + label, alarms=3.0, missed=1, windows=3),  # one found at its label
        _file(credit=0.2, alarms=0.5, missed=0, windows=1),  # found late, an alarm soon after
        _file(credit=0.0, alarms=2.0, missed=0, windows=0),  # no window: two false alarms
    ]
    lost = corpus.lost(Path("."), files)
    scale = (top + 1.0) * 4
    assert lost == {
        "lost late": round(100 * ((top - label) + (top - 0.2)) / scale, 1),
        "lost missed": round(100 * (top + 1.0) / scale, 1),
        "lost false alarms": round(100 * 0.11 * 5.5 / scale, 1),
    }
    std = corpus.normalised(Path("."), "standard", (f["standard"] for f in files))
    assert sum(lost.values()) == pytest.approx(100 - std, abs=0.15)  # each rounded to 0.1
    alone = round(-files[2]["standard"][0], 2)  # a file without a window: no scale
    assert corpus.lost(Path("."), files[2:]) == {
        "lost late": 0.0, "lost missed": 0.0, "lost false alarms": alone
    }  # fmt: skip
    # Firing on every label and nowhere else: each window found at its centre.
    ceiling = corpus.normalised(Path("."), "standard", [_file(label, 0.0, 0, 1)["standard"]])
    assert corpus.onset_ceiling(Path(".")) == ceiling == 93.0

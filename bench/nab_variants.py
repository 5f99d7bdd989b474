"""NAB scores of the detector variants the README compares, to show how the default was
chosen and that its neighbours score alike. Each variant runs in this process over the
35 NAB files (the backtest's loop: score, learn, alert lifecycle) and is scored by
``nab_score.py``'s own ``score_file``: standard, low-FP, low-FN, and the standard score of
each half of the files (alternate files in sorted order, as ``bench/nab.py``).

    python -m bench.nab_variants [--shared ../shared] [--only NAME,NAME]
"""

from __future__ import annotations

import argparse
import collections
import csv
import functools
import importlib.util
import json
import math
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

from bench.report import emit, progress
from streams import backtest
from streams.alerting import Policy
from streams.detection import (
    HOUR_MS,
    AnomalyLikelihood,
    Detector,
    GaussianDetector,
    MaxDetector,
    SeasonalDetector,
    default_detector,
)
from streams.rules import DETECTOR_POLICY

PROFILE_LABELS = {"standard": "std", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}
NO_HOLD = Policy(for_ms=0, keep_firing_for_ms=0, max_flaps=3, flap_hold_ms=0)


class _FewDays(SeasonalDetector):
    """An hour slot scores only once it has values from ``days`` different days."""

    def __init__(self, days: int = 2) -> None:
        super().__init__()
        self.days = days
        self._seen: dict[int, set[int]] = collections.defaultdict(set)

    def score_one(self, x: float, at: int | None = None) -> float:
        if len(self._seen[self._slot(at)]) < self.days:
            return 0.0
        return super().score_one(x, at)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if math.isfinite(x) and at is not None:
            self._seen[self._slot(at)].add(at // (self.bucket_ms * self.buckets))
        super().learn_one(x, at)


class _Difference:
    """A Gaussian over the first differences of the values."""

    def __init__(self) -> None:
        self.gaussian = GaussianDetector(window_size=500, grace_period=30)
        self.previous: float | None = None

    def score_one(self, x: float, at: int | None = None) -> float:
        return 0.0 if self.previous is None else self.gaussian.score_one(x - self.previous)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if self.previous is not None:
            self.gaussian.learn_one(x - self.previous)
        self.previous = x


class _HalfSpaceTrees:
    """River's HalfSpaceTrees over the last 5 values, min-max scaled."""

    def __init__(self, lags: int = 4) -> None:
        from river import anomaly, compose, preprocessing

        trees = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, seed=42)
        self.model = compose.Pipeline(preprocessing.MinMaxScaler(), trees)
        self.recent: collections.deque[float] = collections.deque(maxlen=lags)

    def _features(self, x: float) -> dict[str, float]:
        return {f"x{i}": v for i, v in enumerate([*self.recent, x])}

    def score_one(self, x: float, at: int | None = None) -> float:
        full = len(self.recent) == self.recent.maxlen
        return float(self.model.score_one(self._features(x))) if full else 0.0

    def learn_one(self, x: float, at: int | None = None) -> None:
        if len(self.recent) == self.recent.maxlen:
            self.model.learn_one(self._features(x))
        self.recent.append(x)


def _raw(
    grace: int = 10, alpha: float = 0.05, window: int = 500, seasonal: Any = None, extra: Any = ()
) -> Detector:
    """The higher of the hour-of-day and last-values scores (the default's raw score)."""
    hours = seasonal or SeasonalDetector(alpha=alpha, grace=grace)
    return MaxDetector([hours, GaussianDetector(window_size=window, grace_period=30), *extra])


def _likely(raw: Any, short: int = 20) -> Detector:
    return AnomalyLikelihood(raw, history=1000, short=short, grace=100)


def _variant(name: str) -> Detector:
    """The detector of one variant (built fresh for each file)."""
    if name == "previous default (last 500, short 10)":
        return _likely(GaussianDetector(window_size=500, grace_period=30), short=10)
    if name.startswith("hour of day alone, short "):
        return _likely(SeasonalDetector(grace=3), short=int(name.rsplit(" ", 1)[1]))
    if name == "hour of week alone, short 10":
        return _likely(SeasonalDetector(buckets=168, grace=3), short=10)
    if name == "hour of day (3 values) or last 500":
        return _likely(_raw(grace=3))
    if name == "default":
        return default_detector()
    if name == "default, an hour needs 2 days":
        return _likely(_raw(seasonal=_FewDays(2)))
    if name.startswith("default plus a likelihood over "):
        span = int(name.rsplit(" ", 2)[1])
        return MaxDetector([default_detector(), _likely(_raw(), short=span)])
    if name == "default plus first differences":
        return _likely(_raw(extra=[_Difference()]))
    if name == "HalfSpaceTrees, short 20":
        return _likely(_HalfSpaceTrees())
    if name.startswith("default, weight "):
        return _likely(_raw(alpha=float(name.rsplit(" ", 1)[1])))
    if name.startswith("default, last "):
        return _likely(_raw(window=int(name.rsplit(" ", 1)[1])))
    if name.startswith("default, short "):
        return _likely(_raw(), short=int(name.rsplit(" ", 1)[1]))
    raise ValueError(f"unknown variant {name!r}")


#: Variant name -> the alert policy it runs with.
VARIANTS: dict[str, Policy] = {
    "previous default (last 500, short 10)": NO_HOLD,
    "hour of day alone, short 10": NO_HOLD,
    "hour of day alone, short 20": NO_HOLD,
    "hour of week alone, short 10": NO_HOLD,
    "hour of day (3 values) or last 500": DETECTOR_POLICY,
    "default": DETECTOR_POLICY,
    "default, no hold": NO_HOLD,
    "default, 3h hold": Policy(keep_firing_for_ms=3 * HOUR_MS, max_flaps=3, flap_hold_ms=0),
    "default, weight 0.03": DETECTOR_POLICY,
    "default, weight 0.08": DETECTOR_POLICY,
    "default, last 250": DETECTOR_POLICY,
    "default, last 1000": DETECTOR_POLICY,
    "default, short 15": DETECTOR_POLICY,
    "default, short 25": DETECTOR_POLICY,
    "default, an hour needs 2 days": DETECTOR_POLICY,
    "default plus a likelihood over 1 steps": DETECTOR_POLICY,
    "default plus a likelihood over 5 steps": DETECTOR_POLICY,
    "default plus first differences": DETECTOR_POLICY,
    "HalfSpaceTrees, short 20": DETECTOR_POLICY,
}


def _detector(name: str) -> Detector:
    held_otherwise = ("default, no hold", "default, 3h hold")
    return default_detector() if name in held_otherwise else _variant(name)


def _alerts(name: str, path: Path) -> list[bool]:
    """The backtest over one file: True where the alert goes to firing."""
    with path.open(newline="") as f:
        rows = [(r["timestamp"], float(r["value"])) for r in csv.DictReader(f)]
    return [bool(alert) for *_, alert in backtest.run(rows, _detector(name), VARIANTS[name])]


@functools.cache
def _scorer(shared: Path) -> Any:
    spec = importlib.util.spec_from_file_location("nab_score", shared / "tools" / "nab_score.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@functools.cache
def _windows(shared: Path) -> dict[str, list[list[str]]]:
    return json.loads((shared / "nab" / "labels" / "combined_windows.json").read_text())


def _score_one(task: tuple[str, str, str]) -> tuple[str, str, dict[str, tuple[float, int]]]:
    """One variant on one file: the raw score per profile, and the file's window count."""
    shared, name, rel = task
    nab, windows = _scorer(Path(shared)), _windows(Path(shared))
    path = Path(shared) / "nab" / "data" / rel
    with path.open(newline="") as f:
        timestamps = [nab.norm_ts(r["timestamp"]) for r in csv.DictReader(f)]
    alerts = _alerts(name, path)
    return (
        name,
        rel,
        {
            profile: (nab.score_file(timestamps, alerts, windows[rel], w)[0], len(windows[rel]))
            for profile, w in nab.PROFILES.items()
        },
    )


def _normalised(nab: Any, profile: str, raws: list[tuple[float, int]]) -> float:
    """``nab_score.py``'s normalisation: 0 for never firing, 100 for perfect."""
    w = nab.PROFILES[profile]
    total = sum(raw for raw, _ in raws)
    null = -sum(w["fn"] * n for _, n in raws)
    perfect = sum(w["tp"] * nab.sigma(-1.0) * n for _, n in raws)
    return round(100 * (total - null) / (perfect - null), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).parents[2] / "shared"))
    parser.add_argument("--only", help="comma-separated variant names")
    args = parser.parse_args()
    shared = Path(args.shared)
    names = args.only.split(",") if args.only else list(VARIANTS)
    labelled = sorted(_windows(shared))
    tasks = [(str(shared), name, rel) for name in names for rel in labelled]
    results: dict[str, dict[str, dict[str, tuple[float, int]]]] = collections.defaultdict(dict)
    started = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        for done, (name, rel, scores) in enumerate(pool.imap_unordered(_score_one, tasks), 1):
            results[name][rel] = scores
            progress("variant files", done, len(tasks), started)
    nab = _scorer(shared)
    out: dict[str, float] = {}
    halves = {"a": labelled[0::2], "b": labelled[1::2]}
    for name in names:
        per_file = results[name]
        for profile, label in PROFILE_LABELS.items():
            scores = [s[profile] for s in per_file.values()]
            out[f"{name} | {label}"] = _normalised(nab, profile, scores)
        for half, files in halves.items():
            scores = [per_file[rel]["standard"] for rel in files]
            out[f"{name} | half {half}"] = _normalised(nab, "standard", scores)
    emit(out)


if __name__ == "__main__":
    sys.exit(main())

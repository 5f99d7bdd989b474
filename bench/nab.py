"""How well the default detector does on series it was not shaped on.

Three figures, none of which can flatter it, next to the plain score on ``../shared/nab``:

1. **Per category** of the shared corpus (artificial, realAWSCloudwatch, realKnownCause),
   standard profile, and **leave one category out**: every choice made by looking at
   scores is one of ``CANDIDATES`` (a grid over those choices, the alert policy's
   confirmation among them; the default is one of them). For each category, the
   candidate with the best standard score on the *other* two is picked and scored on
   that category; the three held-out scores are normalised together as one figure. A
   candidate that only fits the files it was picked on shows here as a drop from the
   plain score.
2. **A synthetic corpus** (``bench/synthetic.py``, seeds 2, 4 and 6 as one corpus of 210
   files; none played a part in any choice: development used seeds 1, 3, 5 and 7, and
   seeds 8 to 11 confirmed the gains of the forecast, its shift mean, the raw cap and the
   Student slots before each was kept, seeds 8 to 15 those of calm, the week's hours, the
   daily jobs, the chance check, the 3 h hold, discounting the jobs and the jobs
   unlearned), next to the variants in ``COMPARED`` (the default without one choice,
   and the default of before): bursty heavy-tailed counts, hourly business metrics with
   gaps, road-sensor shapes, sparse integer counts, drifting gauges, daily and weekly
   cycles, latency with ordinary spikes, hourly metrics again with subtler anomalies,
   host gauges with scheduled jobs, demand counts whose every day of the week is its
   own, each with injected spikes, dips, level shifts, variance changes and stuck values
   (and, on the host gauges, a job's load when it is not scheduled and a job that runs
   for hours; on the demand counts, holidays, events and outages); scored by the same
   scorer, per shape and per seed (the spread between seeds says how far a difference
   is noise). Files without
   anomalies (``quiet``; on NAB, ``artificialNoAnomaly`` and one real file) count their
   alerts. On both corpora, the default's points lost to late finds, missed windows and
   false alarms (``corpus.lost``), beside the score of firing on every window's label
   and nowhere else (``corpus.onset_ceiling``): a synthetic anomaly's label is its first
   row, so that is as far as a detector that sees no future can go.
3. **Speed and size**: the backtest's rows/s (score, learn, alert lifecycle, one process)
   against the default of before in the same run (both compiled where the detector's
   build is in use: ``backtest compiled``), and the default model's JSON state after
   50,000 values, whole and as a worker stores it (its differences from a frozen base,
   ``streams.modelbase``). Those two run whole for it; in the grid, candidates that build
   the same raw detector run it once a file and their likelihoods read its scores
   (``corpus.run``'s ``share_raw``), which must give the two the alerts of their whole
   runs.

Published detectors re-scored on the 35 shared files: ARTime 67.5, Numenta HTM 66.5,
contextOSE 61.2, KNN-CAD 52.9, Random Cut Forest 47.9, River GaussianScorer 26.4.

    python -m bench.nab [--shared ../shared] [--seeds 2,4,6]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

import streams
from bench import corpus, synthetic
from bench.report import emit
from streams import modelbase
from streams.detection import CHANCE, HOUR_MS, default_detector
from streams.rules import DETECTOR_POLICY

#: The choices made by looking at scores, each on or off: a log view of the level
#: detectors, the repeat detector, its tail past the longest run it has seen (off: the
#: floor of what its history can tell), a short mean over 3 hours (off: 20 steps), the
#: rarity check (3%), confirmation (firing on the second row over the threshold in a
#: row; off: on the first), a robust history (what alerted is learned as at most the
#: threshold's z), a long memory (the history spans 10,000 steps and sets aside its
#: first 200, the raw detectors' warm-up; off: 1,000 from the first), a forecast in
#: the log view (a level that follows the series plus its hour's offset), its shift
#: mean (the recent mean of its residuals scored too), the raw cap (the raw scale's
#: level detectors score at most 1 - 1e-7), Student slots (an hour slot's tail is
#: Student's t while it has few values) and calm (the hour slots and the forecast less
#: what the day of the week adds, a run of repeats scored by its next step within the
#: runs the history holds, and the raw cap at 1 - 1e-3) and, parts of calm, the week's
#: hours (what the time of the week adds, in blocks of 2 hours, where that fits a series
#: better than its day's offset) and the daily jobs (a surprise that came at its time of
#: day on each of the last two days scores as ordinary: ``streams.recurrence``) and the
#: chance check (an alert also needs the short mean's surprises to be at most 0.3%
#: likely by chance, each raw score a p-value: ``AnomalyLikelihood``'s ``chance``), with
#: those two discounting the jobs (a step the daily jobs scored as scheduled work is no
#: evidence to the chance check: ``discount_jobs``), the jobs unlearned (with the daily
#: jobs, the raw detectors do not learn such a step: ``DailyRecurrence``'s
#: ``teach_jobs`` off) and the 3 h hold (an alert resolves 3 hours after its score fell
#: back; off: 1 hour). All on is the default; all off is the default of before.
CHOICES = (
    "log view",
    "repeats",
    "repeat tail",
    "3 h span",
    "rarity",
    "confirm",
    "robust",
    "long memory",
    "forecast",
    "shift mean",
    "raw cap",
    "student slots",
    "calm",
    "week hours",
    "daily jobs",
    "chance",
    "discount jobs",
    "jobs unlearned",
    "3 h hold",
)
#: A choice that is part of others: without them it is the same candidate as neither,
#: so it is left out of the grid.
REQUIRES = {
    "repeat tail": ("repeats",),
    "forecast": ("log view",),
    "shift mean": ("forecast",),
    "week hours": ("calm",),
    "daily jobs": ("calm",),
    "discount jobs": ("daily jobs", "chance"),
    "jobs unlearned": ("daily jobs",),
}


def _coherent(choice: tuple[bool, ...]) -> bool:
    on = dict(zip(CHOICES, choice, strict=True))
    return all(on[n] for part, needs in REQUIRES.items() if on[part] for n in needs)


GRID = [
    choice for choice in itertools.product((True, False), repeat=len(CHOICES)) if _coherent(choice)
]


def _name(choice: tuple[bool, ...]) -> str:
    signs = ("+" if on else "-" for on in choice)
    return ", ".join(sign + label for sign, label in zip(signs, CHOICES, strict=True))


CANDIDATES = {_name(choice): choice for choice in GRID}
DEFAULT = _name(GRID[0])
BEFORE = _name(GRID[-1])


def _without(*off: str) -> str:
    """The default with the choices ``off`` turned off, and those that are part of them
    (:data:`REQUIRES`) with them."""
    dropped = set(off)
    while grown := {part for part, needs in REQUIRES.items() if dropped & set(needs)} - dropped:
        dropped |= grown
    return _name(tuple(choice not in dropped for choice in CHOICES))


#: What the default is compared with: with the jobs learned (the default of the last
#: release), without discounting the jobs, without the 3 h hold, without the chance
#: check, without the daily jobs, without the week's hours, without calm, without the
#: Student slots, without the raw cap, without the shift mean, without the forecast,
#: without confirmation, without each part of the robust long history (what each alone
#: changes), and the default of before.
COMPARED = (
    ("with the jobs learned", _without("jobs unlearned")),
    ("without discounting the jobs", _without("discount jobs")),
    ("without the 3 h hold", _without("3 h hold")),
    ("without the chance check", _without("chance")),
    ("without the daily jobs", _without("daily jobs")),
    ("without the week's hours", _without("week hours")),
    ("without calm", _without("calm")),
    ("without the Student slots", _without("student slots")),
    ("without the raw cap", _without("raw cap")),
    ("without the shift mean", _without("shift mean")),
    ("without the forecast", _without("forecast")),
    ("without confirmation", _without("confirm")),
    ("without robust", _without("robust")),
    ("without the long memory", _without("long memory")),
    ("default of before", BEFORE),
)


#: The counts a whole run and the grid's run of one candidate must agree on.
COUNTED = ("tp", "fp", "missed")

#: The figures each candidate compared is reported with (beside its score per category).
HEADLINE = ("std", "low_fp", "low_fn", "fp", "missed")


def _scores(summary: dict[str, Any], keys: tuple[str, ...] = HEADLINE) -> dict[str, Any]:
    """``keys`` of a corpus summary, and its standard score per category (files without
    anomalies have none to give: ``std quiet`` is left out)."""
    return {
        key: value
        for key, value in summary.items()
        if key in keys or (key.startswith("std ") and key != "std quiet")
    }


def lookup(name: str) -> corpus.Variant:
    """A candidate by name: :func:`default_detector` with its choices on or off."""
    on = dict(zip(CHOICES, CANDIDATES[name], strict=True))
    choices = {
        "log_view": on["log view"],
        "repeats": on["repeats"],
        "repeat_tail": on["repeat tail"],
        "span_ms": 3 * HOUR_MS if on["3 h span"] else None,
        "rarity": 0.03 if on["rarity"] else None,
        "robust": on["robust"],
        "long_memory": on["long memory"],
        "forecast": on["forecast"],
        "forecast_shift": on["shift mean"],
        "raw_cap": on["raw cap"],
        "student": on["student slots"],
        "calm": on["calm"],
        "week_hours": on["week hours"],
        "daily_jobs": on["daily jobs"],
        "chance": CHANCE if on["chance"] else None,
        "discount_jobs": on["discount jobs"],
        "jobs_unlearned": on["jobs unlearned"],
    }
    policy = dataclasses.replace(
        DETECTOR_POLICY,
        for_ms=DETECTOR_POLICY.for_ms if on["confirm"] else 0,
        keep_firing_for_ms=DETECTOR_POLICY.keep_firing_for_ms if on["3 h hold"] else HOUR_MS,
    )
    return (lambda: default_detector(**choices)), policy


def leave_one_category_out(shared: Path, runs: dict[str, dict]) -> dict[str, Any]:
    """For each category: the candidate best on the others, scored on it."""
    categories = sorted({corpus.category(rel) for rel in corpus.labels(shared / "nab")})
    out: dict[str, Any] = {}
    held_out: list[tuple[float, int]] = []
    for cat in categories:

        def others(name: str, cat: str = cat) -> float:
            files = runs[name].items()
            kept = (s["standard"] for rel, (s, _) in files if corpus.category(rel) != cat)
            return corpus.normalised(shared, "standard", kept)

        best = max(CANDIDATES, key=others)
        files = runs[best].items()
        scores = [s["standard"] for rel, (s, _) in files if corpus.category(rel) == cat]
        held_out += scores
        out[f"loco {cat}"] = corpus.normalised(shared, "standard", scores)
        out[f"loco {cat} picked"] = best
    out["loco standard"] = corpus.normalised(shared, "standard", held_out)
    return out


def state_bytes(values: int = 50_000) -> tuple[int, int]:
    """JSON size of a default model after ``values`` minutely values of a noisy cycle:
    its whole state, and the state as a worker stores it (``streams.modelbase.thin``)."""
    rng, d = random.Random(7), default_detector()
    for i in range(values):
        x = 100 + 20 * math.sin(i / 200) + rng.gauss(0, 3)
        d.score_one(x, i * 60_000)
        d.learn_one(x, i * 60_000)
    state = d.to_json()
    return len(orjson.dumps(state)), len(orjson.dumps(modelbase.thin(state)))


def alerts_on_quiet(per_file: dict[str, tuple]) -> int:
    """Alerts on files with no anomaly window (false by definition), as the scorer counts
    them: past the probationary period (the first 15% of rows, at most 750)."""
    return sum(c["fp"] for (s, c) in per_file.values() if s["standard"][1] == 0)


def synthetic_figures(shared: Path, seeds: list[int]) -> dict[str, Any]:
    """The held-out synthetic corpus: the default and what it is ``COMPARED`` with, over
    all ``seeds`` as one corpus, per shape and per seed."""
    names = [DEFAULT, *(name for _, name in COMPARED)]
    with tempfile.TemporaryDirectory(prefix="vigil-synthetic-") as tmp:
        root = Path(tmp)
        synthetic.write_seeds(root, seeds)
        runs = corpus.run(shared, root, names, lookup, "synthetic")
    print(file=sys.stderr)
    out: dict[str, Any] = {}
    synth = corpus.summary(shared, runs[DEFAULT])
    for key, value in _scores(synth, ("tp", *HEADLINE, *corpus.LOST)).items():
        out[f"synthetic {key}"] = value
    out["synthetic alerts past probation on quiet files"] = alerts_on_quiet(runs[DEFAULT])
    for label, name in COMPARED:
        for key, value in _scores(corpus.summary(shared, runs[name])).items():
            out[f"synthetic {key}, {label}"] = value
        out[f"synthetic alerts past probation on quiet files, {label}"] = alerts_on_quiet(
            runs[name]
        )
    for seed in seeds:
        for label, name in (("", DEFAULT), *((f", {label}", name) for label, name in COMPARED)):
            kept = (
                s["standard"]
                for rel, (s, _) in runs[name].items()
                if synthetic.seed_of(rel) == seed
            )
            out[f"synthetic seed {seed} std{label}"] = corpus.normalised(shared, "standard", kept)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).parents[2] / "shared"))
    parser.add_argument(
        "--seeds", default="2,4,6", help="the synthetic corpus' seeds (held out: 2,4,6)"
    )
    args = parser.parse_args()
    shared = Path(args.shared).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    nab = shared / "nab"
    runs = corpus.run(shared, nab, list(CANDIDATES), lookup, "shared NAB", share_raw=True)
    print(file=sys.stderr)
    # The speed: the default and the default of before each run whole, their raw
    # detectors included; the same alerts as the grid's, or the grid is wrong.
    timed = corpus.run(shared, nab, [DEFAULT, BEFORE], lookup, "speed")
    print(file=sys.stderr)
    for name in (DEFAULT, BEFORE):
        for rel, (scores, counts) in timed[name].items():
            grid_scores, grid_counts = runs[name][rel]
            if scores != grid_scores or any(counts[k] != grid_counts[k] for k in COUNTED):
                raise RuntimeError(f"{name} on {rel}: the shared raw pass scored otherwise")
    summaries = {name: corpus.summary(shared, runs[name]) for name in CANDIDATES}
    result: dict[str, Any] = {}
    default = summaries[DEFAULT]
    for key, value in _scores(default, ("tp", *HEADLINE, *corpus.LOST)).items():
        result[f"nab {key}"] = value
    result["firing on every label and nowhere else"] = corpus.onset_ceiling(shared)
    result["nab alerts past probation on files without anomalies"] = alerts_on_quiet(runs[DEFAULT])
    for label, name in COMPARED:
        for key, value in _scores(summaries[name]).items():
            result[f"nab {key}, {label}"] = value
        result[f"nab alerts past probation on files without anomalies, {label}"] = alerts_on_quiet(
            runs[name]
        )
    result.update(leave_one_category_out(shared, runs))
    result.update(synthetic_figures(shared, seeds))
    speed, speed_before = (
        round(s["rows"] / s["seconds"])
        for s in (corpus.summary(shared, timed[name]) for name in (DEFAULT, BEFORE))
    )
    result["backtest rows/s"] = speed
    result["backtest rows/s, default of before"] = speed_before
    result["backtest speed against before"] = round(speed / speed_before, 3)
    result["backtest compiled"] = bool(streams.COMPILED)
    result["state bytes"], result["state bytes stored"] = state_bytes()
    for name, scores in summaries.items():
        result[f"candidate {name}"] = scores["std"]
    emit(result)


if __name__ == "__main__":
    main()

"""Backtests of a detector over a labelled corpus in NAB's layout, scored by
``nab_score.py``'s own functions: raw score per file and profile, then NAB's normalisation
over any group of files (a category, a half, everything).

A corpus is a folder with ``data/<category>/<file>.csv`` and
``labels/combined_windows.json``: ``../shared/nab`` or one written by ``bench.synthetic``.
"""

from __future__ import annotations

import collections
import csv
import functools
import importlib.util
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from bench.report import progress
from streams import backtest
from streams.alerting import Policy
from streams.detection import CHANCE, AnomalyLikelihood, DailyRecurrence, Detector

PROFILES = {"standard": "std", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}

#: A variant: a fresh detector per file, and the alert policy it runs with.
Variant = tuple[Callable[[], Detector], Policy]
#: Per file and profile: (raw score, windows in the file).
FileScores = dict[str, tuple[float, int]]
#: A likelihood's pass over a file: each row's score, and the indices of those at or
#: over the threshold (``backtest.hot``), which every policy's alerts read.
Pass = tuple[list[float], list[int]]
#: What a likelihood's detector scored over a file: each row's score and, under the daily
#: jobs' recurrence, whether it scored the row as scheduled work (None without one).
Recording = tuple[list[float], list[bool] | None]


@functools.cache
def scorer(shared: Path) -> Any:
    """``shared/tools/nab_score.py`` as a module."""
    spec = importlib.util.spec_from_file_location("nab_score", shared / "tools" / "nab_score.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@functools.cache
def labels(root: Path) -> dict[str, list[list[str]]]:
    return json.loads((root / "labels" / "combined_windows.json").read_text())  # type: ignore[no-any-return]


def category(rel: str) -> str:
    """NAB's two artificial folders are one category."""
    top = rel.split("/", 1)[0]
    return "artificial" if top.startswith("artificial") else top


def read(path: Path) -> list[tuple[str, float]]:
    with path.open(newline="") as f:
        return [(r["timestamp"], float(r["value"])) for r in csv.DictReader(f)]


class Replay:
    """A detector that gives back the scores another gave, one a value in order: the
    raw detector under the daily jobs' recurrence, run once (``run`` with
    ``share_raw``). The recurrence asks its detector for one score and one learn per
    value, so it sees the same scores and scores the same to the bit."""

    kind = "replay"

    def __init__(self, scores: list[float]) -> None:
        self._scores = scores
        self._next = 0

    def score_one(self, x: float, at: int | None = None) -> float:
        return self._scores[self._next]

    def learn_one(self, x: float, at: int | None = None) -> None:
        self._next += 1

    def to_json(self) -> dict[str, Any]:
        raise TypeError("a replay keeps no state")


def raw_of(variant: Variant) -> bytes | None:
    """What the raw detector of ``variant``'s likelihood is made of: a fresh one's state
    (a state holds every setting, as a model is restored from it) without the daily
    jobs' recurrence (:func:`bare`); None when the variant is not a likelihood. Variants
    with one such state can share its scores."""
    detector = variant[0]()
    if not isinstance(detector, AnomalyLikelihood):
        return None
    return orjson.dumps(bare(detector.detector).to_json())


def bare(raw: Detector) -> Detector:
    """What a recording of ``raw``'s scores is made of: under the daily jobs'
    recurrence, the detector it wraps. The recurrence reads nothing but those scores and
    the values' times, so :func:`replay` runs it again over the recording, and
    candidates with and without it share one raw pass (240 raw detectors a file in
    ``bench.nab``'s grid, not 336). A recurrence that keeps its jobs from the detector
    (``teach_jobs`` off) changes what that detector learns, so it is part of the raw
    pass: the recording is then of its detector's scores as they came under it
    (:func:`_scores`)."""
    if isinstance(raw, DailyRecurrence) and raw.teach_jobs:
        return raw.detector
    return raw


def replay(raw: Detector, scores: list[float]) -> Detector:
    """``raw`` (a fresh one) made of the recorded ``scores`` of the detector it wraps
    under the daily jobs' recurrence, or of itself: the recurrence, with its own
    settings, over them. A recurrence that keeps its jobs from the detector is made to
    teach them here: the recording holds what that detector learned, and the replay's
    learning only moves on to the next score."""
    if isinstance(raw, DailyRecurrence):
        raw.detector = Replay(scores)
        raw.teach_jobs = True
        return raw
    return Replay(scores)


def raw_scores(
    detector: Detector, rows: list[tuple[str, float]], ats: list[int] | None = None
) -> list[float]:
    """The scores of the detector an :class:`AnomalyLikelihood` wraps (what :func:`bare`
    keeps of it), as the likelihood asks for them over ``rows`` (their times ``ats``,
    parsed here if None)."""
    if not isinstance(detector, AnomalyLikelihood):
        raise TypeError(f"a shared raw pass needs a likelihood, not {detector.kind!r}")
    if ats is None:
        ats = [backtest.timestamp_ms(t) for t, _ in rows]
    return _scores(bare(detector.detector), rows, ats)


def _scores(detector: Detector, rows: list[tuple[str, float]], ats: list[int]) -> list[float]:
    """``detector``'s score of each row, each value scored, then learned; for the daily
    jobs' recurrence (one that keeps its jobs from the detector it wraps: :func:`bare`),
    that detector's scores as the recurrence asked for them, which :func:`replay` runs
    the recurrence over again."""
    if isinstance(detector, DailyRecurrence):
        inner: list[float] = []
        detector.detector = _Recorder(detector.detector, inner)
        _walk(detector, rows, ats)
        return inner
    return _walk(detector, rows, ats)[0]


def _walk(detector: Detector, rows: list[tuple[str, float]], ats: list[int]) -> Recording:
    """``detector``'s score of each row, each value scored, then learned, and under the
    daily jobs' recurrence whether it scored each as scheduled work (None otherwise)."""
    recurrence = detector if isinstance(detector, DailyRecurrence) else None
    scores: list[float] = []
    jobs: list[bool] = []
    for at, (_, value) in zip(ats, rows, strict=True):
        scores.append(detector.score_one(value, at))
        if recurrence is not None:
            jobs.append(recurrence.scheduled)
        detector.learn_one(value, at)
    return scores, None if recurrence is None else jobs


class _Recorder:
    """``detector``, each score it gives appended to ``scores``: the recurrence asks for
    one a value, in its ``score_one`` (its ``learn_one`` asks again only for a value not
    scored just before, which :func:`_scores` never gives it)."""

    kind = "recorder"

    def __init__(self, detector: Detector, scores: list[float]) -> None:
        self.detector, self.scores = detector, scores

    def score_one(self, x: float, at: int | None = None) -> float:
        score = self.detector.score_one(x, at)
        self.scores.append(score)
        return score

    def learn_one(self, x: float, at: int | None = None) -> None:
        self.detector.learn_one(x, at)

    def to_json(self) -> dict[str, Any]:
        raise TypeError("a recorder keeps no state")


def score_file(shared: Path, root: Path, rel: str, variant: Variant) -> tuple[FileScores, dict]:
    """One backtest of ``variant`` over one labelled file, scored for every profile."""
    return score_variants(shared, root, rel, [variant])[0]


def score_variants(
    shared: Path, root: Path, rel: str, variants: list[Variant], share_raw: bool = False
) -> list[tuple[FileScores, dict]]:
    """A backtest of each of ``variants`` over one labelled file (read once), scored for
    every profile (:func:`alerts_of` says what ``share_raw`` shares). Variants whose
    alerts fall on the same rows are scored once: in ``bench.nab``'s grid many of a raw
    detector's 64 or 128 candidates alert alike on a file (on ``nyc_taxi``, the
    default's group of 128 gave 52 distinct alert columns: a scratch count)."""
    nab = scorer(shared)
    rows = read(root / "data" / rel)
    timestamps = [nab.norm_ts(t) for t, _ in rows]
    windows = labels(root)[rel]
    scored: dict[bytes, tuple[FileScores, dict[str, int]]] = {}
    out = []
    for alerts, seconds in alerts_of(rows, variants, share_raw):
        key = bytes(alerts)
        if key not in scored:
            scores, counts = {}, {}
            for profile, w in nab.PROFILES.items():
                total, tp, fp, missed = nab.score_file(timestamps, alerts, windows, w)
                scores[profile] = (total, len(windows))
                if profile == "standard":
                    counts.update(tp=tp, fp=fp, missed=missed)
            scored[key] = scores, counts
        scores, counts = scored[key]
        out.append((scores, {"rows": len(rows), "seconds": seconds, **counts}))
    return out


def alerts_of(
    rows: list[tuple[str, float]], variants: list[Variant], share_raw: bool = False
) -> list[tuple[list[int], float]]:
    """Each of ``variants``' alert column over ``rows`` (1 where it fired), and the
    seconds it took.

    With ``share_raw`` (likelihoods over one raw detector, see :func:`raw_of`) the first
    one's raw detector runs once, the daily jobs' recurrence once over its scores
    (:func:`_recorded`), and each likelihood is run over those in one loop
    (``AnomalyLikelihood.rescore``); variants of one detector (a fresh one's state,
    which holds every setting) that differ in their alert policy alone score the rows
    once, each policy running the alert state machine over those scores from one row
    over the threshold to the next (``backtest.firings``); so do variants that differ
    in the likelihood's chance check alone (on or off: :func:`_checked_and_not`). The
    seconds are then the likelihood's and the alerts' alone, a policy's after the first
    its alerts' alone. Over three shared NAB files (9,946 rows) the grid's 15,360
    candidates took 108 s against 220 with a likelihood's and the recurrence's methods
    called a value at a time and every row stepped, every score the same (a scratch run
    of each tree, side by side; ``bench.nab``'s progress line prints the grid's rate).
    """
    raw = None
    if share_raw:
        ats = [backtest.timestamp_ms(t) for t, _ in rows]
        values = [value for _, value in rows]
        raw = raw_scores(variants[0][0](), rows, ats)
    scored: dict[bytes, tuple[Pass, Pass]] = {}
    recorded: dict[bytes, Recording] = {}
    out = []
    for make, policy in variants:
        started = time.perf_counter()
        detector = make()
        if raw is None:
            alerts = [alert for *_, alert in backtest.run(rows, detector, policy)]
        else:
            assert isinstance(detector, AnomalyLikelihood)  # raw_scores checked the first
            checks = detector.chance is not None  # before a pass turns it on
            key = _pass_key(detector)
            if key not in scored:
                given = _recorded(detector.detector, raw, recorded, rows, ats)
                scored[key] = _checked_and_not(detector, given, values, ats)
            checked, unchecked = scored[key]
            scores, over = checked if checks else unchecked
            alerts = backtest.column(len(rows), backtest.firings(ats, values, scores, policy, over))
        out.append((alerts, time.perf_counter() - started))
    return out


def _recorded(
    fresh: Detector,
    raw: list[float],
    recorded: dict[bytes, Recording],
    rows: list[tuple[str, float]],
    ats: list[int],
) -> Recording:
    """What ``fresh`` (a likelihood's detector, a fresh one) scores over ``rows`` given
    the raw pass ``raw``: ``raw`` itself, or where ``fresh`` has the daily jobs'
    recurrence, what it makes of ``raw`` and which rows it scored as scheduled work, run
    once for every likelihood of a group that has it alike (``recorded``, by the fresh
    detector's state), not once a likelihood."""
    if not isinstance(fresh, DailyRecurrence):
        return raw, None
    key = orjson.dumps(fresh.to_json())
    if key not in recorded:
        recorded[key] = _walk(replay(fresh, raw), rows, ats)
    return recorded[key]


def _pass_key(detector: AnomalyLikelihood) -> bytes:
    """What a likelihood's pass is made of: its state, the chance check always on (its
    value if set, :data:`CHANCE` if not), so candidates that differ in that check alone
    share one pass (:func:`_checked_and_not`)."""
    state = detector.to_json()
    state["chance"] = detector.chance or CHANCE
    return orjson.dumps(state)


def _checked_and_not(
    detector: AnomalyLikelihood, given: Recording, values: list[float], ats: list[int]
) -> tuple[Pass, Pass]:
    """The scores of ``detector`` (a fresh one), its detector's recording being
    ``given``, over the rows (``values`` at ``ats``) with its chance check
    (:data:`CHANCE` if it has none) and without: the check caps what is scored, never
    what is learned, so one pass gives both (``AnomalyLikelihood.rescore``); each with
    its rows over the threshold."""
    detector.chance = detector.chance or CHANCE
    scores, jobs = given
    checked, unchecked = detector.rescore(scores, values, ats, jobs)
    return (checked, backtest.hot(checked)), (unchecked, backtest.hot(unchecked))


def normalised(shared: Path, profile: str, scores: Iterable[tuple[float, int]]) -> float:
    """``nab_score.py``'s normalisation: 0 for never firing, 100 for perfect. A group of
    files without any window has no scale: its score is minus its false-alarm cost."""
    nab = scorer(shared)
    w = nab.PROFILES[profile]
    scores = list(scores)
    total = sum(raw for raw, _ in scores)
    null = -sum(w["fn"] * n for _, n in scores)
    perfect = sum(w["tp"] * nab.sigma(-1.0) * n for _, n in scores)
    if perfect == null:
        return round(total, 2)
    return round(100 * (total - null) / (perfect - null), 1)


#: Where :func:`lost` says the standard profile's points went.
LOST = ("lost late", "lost missed", "lost false alarms")


def lost(shared: Path, scores: Iterable[FileScores]) -> dict[str, float]:
    """The standard profile's points a group of files lost (100 less its score, when it
    has windows), by cause:

    - ``lost late``: windows found after their first row. A window is centred on its
      label (a synthetic anomaly's first row), so an alert on the label itself earns
      ``sigma(-0.5)``, not ``sigma(-1)``: a detector that fires on every label and
      nowhere else loses :func:`onset_ceiling`'s complement here and scores that;
    - ``lost missed``: windows never found (each forfeits its credit and costs its
      weight);
    - ``lost false alarms``: alerts outside every window, each as ``nab_score.py``
      weighs it (less soon after a window).

    Each is read off a file's score under the three profiles, which weigh the same
    detections differently (``nab_score.py`` gives nothing finer): the standard and low-FP
    scores differ by the false alarms' cost alone, the standard and low-FN by the missed
    windows' alone, and what is left of the standard score is the credit of the windows
    found. The three add up to 100 less the standard score."""
    nab = scorer(shared)
    std, low_fp, low_fn = (nab.PROFILES[p] for p in PROFILES)
    if not std["tp"] == low_fp["tp"] == low_fn["tp"] or std["fp"] == low_fp["fp"]:
        raise ValueError("the profiles must weigh a find alike and false alarms apart")
    if std["fp"] != low_fn["fp"] or std["fn"] == low_fn["fn"]:
        raise ValueError("the profiles must weigh false alarms alike and misses apart")
    top = std["tp"] * nab.sigma(-1.0)  # a window found on its first row
    late = missed = false_alarms = windows = 0.0
    for s in scores:
        total, n = s["standard"]
        alarms = (total - s["reward_low_FP_rate"][0]) / (low_fp["fp"] - std["fp"]) * std["fp"]
        misses = (total - s["reward_low_FN_rate"][0]) / (low_fn["fn"] - std["fn"])  # windows
        credit = total + alarms + misses * std["fn"]
        late += top * (n - misses) - credit
        missed += misses * (top + std["fn"])
        false_alarms += alarms
        windows += n
    scale = (top + std["fn"]) * windows  # normalised()'s perfect less its null
    if scale == 0:  # no window: the false alarms' cost, as normalised() gives it
        return {"lost late": 0.0, "lost missed": 0.0, "lost false alarms": round(false_alarms, 2)}
    return {
        key: round(100 * part / scale, 1)
        for key, part in zip(LOST, (late, missed, false_alarms), strict=True)
    }


def onset_ceiling(shared: Path) -> float:
    """The standard score of a detector that fires on the row each window is centred on
    (its label) and nowhere else: what is left above it is lost to being late, or to
    firing before the label (what a detector that sees no future cannot do where the
    label is an anomaly's first row, as in the synthetic corpus)."""
    nab = scorer(shared)
    w = nab.PROFILES["standard"]
    credit, perfect = w["tp"] * nab.sigma(-0.5), w["tp"] * nab.sigma(-1.0)
    return round(100 * (credit + w["fn"]) / (perfect + w["fn"]), 1)


def _task(task: tuple[Path, Path, list[str], str, Callable[[str], Variant], bool]) -> list:
    """One file under each variant of ``names`` (:func:`score_variants`)."""
    shared, root, names, rel, lookup, share_raw = task
    results = score_variants(shared, root, rel, [lookup(name) for name in names], share_raw)
    return [(name, rel, *result) for name, result in zip(names, results, strict=True)]


def run(
    shared: Path,
    root: Path,
    names: list[str],
    lookup: Callable[[str], Variant],
    label: str = "files",
    share_raw: bool = False,
) -> dict[str, dict[str, tuple[FileScores, dict]]]:
    """Every variant of ``names`` (built by ``lookup``, a module-level function) over every
    labelled file of ``root``, on two processes: name -> file -> (scores, counts).

    ``share_raw``: likelihoods over the same raw detector (:func:`raw_of`) run it once a
    file for all of them (their ``seconds`` leave it out)."""
    groups: dict[bytes | str, list[str]] = collections.defaultdict(list)
    for name in names:
        raw = raw_of(lookup(name)) if share_raw else None
        groups[raw if raw is not None else name].append(name)
    tasks = [
        (shared, root, group, rel, lookup, share_raw and len(group) > 1)
        for group in groups.values()
        for rel in sorted(labels(root))
    ]
    out: dict[str, dict[str, tuple[FileScores, dict]]] = collections.defaultdict(dict)
    started, done, total = time.perf_counter(), 0, len(names) * len(labels(root))
    with multiprocessing.Pool(2) as pool:
        for results in pool.imap_unordered(_task, tasks):
            for name, rel, scores, counts in results:
                out[name][rel] = (scores, counts)
            done += len(results)
            progress(label, done, total, started)
    return out


def summary(shared: Path, per_file: dict[str, tuple[FileScores, dict]]) -> dict[str, Any]:
    """Scores of one variant: every profile overall, standard per category, where the
    standard points went (:func:`lost`), and counts."""
    out: dict[str, Any] = {}
    for profile, short in PROFILES.items():
        out[short] = normalised(shared, profile, (s[profile] for s, _ in per_file.values()))
    by_category: dict[str, list[str]] = collections.defaultdict(list)
    for rel in per_file:
        by_category[category(rel)].append(rel)
    for cat, rels in sorted(by_category.items()):
        scores = (per_file[r][0]["standard"] for r in rels)
        out[f"std {cat}"] = normalised(shared, "standard", scores)
    out.update(lost(shared, (s for s, _ in per_file.values())))
    for key in ("tp", "fp", "missed", "rows", "seconds"):
        out[key] = sum(c[key] for _, c in per_file.values())
    return out

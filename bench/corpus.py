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

from bench.report import progress
from streams import backtest
from streams.alerting import Policy
from streams.detection import Detector

PROFILES = {"standard": "std", "reward_low_FP_rate": "low_fp", "reward_low_FN_rate": "low_fn"}

#: A variant: a fresh detector per file, and the alert policy it runs with.
Variant = tuple[Callable[[], Detector], Policy]
#: Per file and profile: (raw score, windows in the file).
FileScores = dict[str, tuple[float, int]]


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


def score_file(shared: Path, root: Path, rel: str, variant: Variant) -> tuple[FileScores, dict]:
    """One backtest of ``variant`` over one labelled file, scored for every profile."""
    nab = scorer(shared)
    rows = read(root / "data" / rel)
    make, policy = variant
    started = time.perf_counter()
    alerts = [bool(alert) for *_, alert in backtest.run(rows, make(), policy)]
    elapsed = time.perf_counter() - started
    timestamps = [nab.norm_ts(t) for t, _ in rows]
    windows = labels(root)[rel]
    scores, counts = {}, {"rows": len(rows), "seconds": elapsed}
    for profile, w in nab.PROFILES.items():
        raw, tp, fp, missed = nab.score_file(timestamps, alerts, windows, w)
        scores[profile] = (raw, len(windows))
        if profile == "standard":
            counts.update(tp=tp, fp=fp, missed=missed)
    return scores, counts


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


def _task(task: tuple[Path, Path, str, str, Callable[[str], Variant]]) -> tuple:
    shared, root, name, rel, lookup = task
    return name, rel, *score_file(shared, root, rel, lookup(name))


def run(
    shared: Path,
    root: Path,
    names: list[str],
    lookup: Callable[[str], Variant],
    label: str = "files",
) -> dict[str, dict[str, tuple[FileScores, dict]]]:
    """Every variant of ``names`` (built by ``lookup``, a module-level function) over every
    labelled file of ``root``, on two processes: name -> file -> (scores, counts)."""
    tasks = [(shared, root, name, rel, lookup) for name in names for rel in sorted(labels(root))]
    out: dict[str, dict[str, tuple[FileScores, dict]]] = collections.defaultdict(dict)
    started = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        for done, (name, rel, scores, counts) in enumerate(pool.imap_unordered(_task, tasks), 1):
            out[name][rel] = (scores, counts)
            progress(label, done, len(tasks), started)
    return out


def summary(shared: Path, per_file: dict[str, tuple[FileScores, dict]]) -> dict[str, Any]:
    """Scores of one variant: every profile overall, standard per category, and counts."""
    out: dict[str, Any] = {}
    for profile, short in PROFILES.items():
        out[short] = normalised(shared, profile, (s[profile] for s, _ in per_file.values()))
    by_category: dict[str, list[str]] = collections.defaultdict(list)
    for rel in per_file:
        by_category[category(rel)].append(rel)
    for cat, rels in sorted(by_category.items()):
        scores = (per_file[r][0]["standard"] for r in rels)
        out[f"std {cat}"] = normalised(shared, "standard", scores)
    for key in ("tp", "fp", "missed", "rows", "seconds"):
        out[key] = sum(c[key] for _, c in per_file.values())
    return out

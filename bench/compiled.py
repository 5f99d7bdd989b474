"""The detector's compiled build (``setup.py``) against its own sources, in one run.

Each side backtests the same files (the shared NAB corpus and a synthetic seed) with the
default detector, in a process of its own: the sources with ``VIGIL_PURE_PYTHON=1``. The
sides take turns, ``--rounds`` times each, the fastest round counting. Every score and
alert of a side goes into a digest, and the two digests must be the same: the build is a
speed-up of the same arithmetic, not another detector.

    python -m bench.compiled [--shared ../shared] [--seed 2] [--rounds 2]

Prints its figures as JSON, then a table.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import emit

ROOT = Path(__file__).resolve().parent.parent


def is_build(module_file: str) -> bool:
    """Whether a module was loaded from a compiled build (not from its source)."""
    return module_file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def backtest_files(paths: list[Path]) -> dict[str, Any]:
    """Backtest ``paths`` in this process: rows, seconds, alerts, a digest of every score
    and alert, and the file the detector's module was loaded from."""
    from bench.corpus import read
    from streams import backtest, detection

    data = [read(path) for path in paths]
    out: list[tuple[float, int]] = []
    started = time.perf_counter()
    for rows in data:
        out.extend((score, fired) for _, _, score, fired in backtest.run(rows))
    seconds = time.perf_counter() - started
    digest = hashlib.sha256()
    for score, fired in out:
        digest.update(struct.pack("<dB", score, fired))
    return {
        "rows": len(out),
        "seconds": seconds,
        "alerts": sum(fired for _, fired in out),
        "digest": digest.hexdigest(),
        "module": detection.__file__,
    }


def measure(paths: list[Path], *, sources: bool) -> dict[str, Any]:
    """:func:`backtest_files` in a new process: the build where there is one, or the
    sources (``sources``)."""
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_PURE_PYTHON"}
    if sources:
        env["VIGIL_PURE_PYTHON"] = "1"
    command = [sys.executable, "-m", "bench.compiled", "--child", *map(str, paths)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the backtest's process failed:\n{done.stderr}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def compare(paths: list[Path], rounds: int) -> dict[str, Any]:
    best: dict[str, dict[str, Any]] = {}
    for turn in range(rounds):
        for side in ("compiled", "sources"):
            print(f"  round {turn + 1}/{rounds}: {side}", file=sys.stderr)
            got = measure(paths, sources=side == "sources")
            if side not in best or got["seconds"] < best[side]["seconds"]:
                best[side] = got
    built, plain = best["compiled"], best["sources"]
    speed = {side: round(r["rows"] / r["seconds"]) for side, r in best.items()}
    return {
        "files": len(paths),
        "rows": built["rows"],
        "alerts": built["alerts"],
        "backtest rows/s, compiled": speed["compiled"],
        "backtest rows/s, sources": speed["sources"],
        "compiled against sources": round(speed["compiled"] / speed["sources"], 3),
        "same scores and alerts": built["digest"] == plain["digest"],
        "compiled module": Path(built["module"]).name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs="+", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(backtest_files(args.child)))
        return
    from bench import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write(Path(tmp), args.seed)
        paths = sorted((args.shared / "nab" / "data").rglob("*.csv"))
        paths += sorted((Path(tmp) / "data").rglob("*.csv"))
        result = compare(paths, args.rounds)
    emit(result)
    if not result["same scores and alerts"]:
        sys.exit("the compiled build and its sources scored differently")
    if not is_build(result["compiled module"]):
        sys.exit("no compiled build ran: pip install -e . builds one (with a C compiler)")


if __name__ == "__main__":
    main()

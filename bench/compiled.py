"""The worker's compiled core (``setup.py``) against its own sources, in one run.

Two workloads, each side in a process of its own (the sources with
``VIGIL_PURE_PYTHON=1``), taking turns ``--rounds`` times each, the fastest round
counting:

- the backtest: the default detector over the shared NAB corpus and a synthetic seed,
  every score and alert in a digest;
- the processor: ``--events`` bench events (``bench.pipeline``'s, written once for both
  sides) over each of ``--series`` series counts through a processor with windows
  ``1m,5m,5m/1m`` and the default rules, every closed window's line, alert transition
  and detector score, and the final checkpoint, in a digest.

The two digests of a workload must be the same: the build is a speed-up of the same
arithmetic, not another detector or other windows.

    python -m bench.compiled [--shared ../shared] [--seed 2] [--rounds 2]
        [--events 300000] [--series 1000 100000]

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


#: The wall time the processor is told (its events are six hours old to ten minutes
#: less: none is in the future, none too old).
PROCESSED_AT_MS = 1_800_000_000_000


def write_envelopes(path: Path, events: int, series: int) -> None:
    """``bench.pipeline``'s events, 1,000 to an envelope, each envelope's length before it
    (both sides of a comparison read the same bytes: the events' times follow the clock
    when they are made)."""
    from bench.worker_core import _messages

    with path.open("wb") as out:
        for _, _, value in _messages(events, series):
            out.write(struct.pack("<I", len(value)) + value)


def read_envelopes(path: Path) -> list[tuple[int, int, bytes]]:
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        out.append((0, len(out), data[at + 4 : at + 4 + size]))
        at += 4 + size
    return out


def process_file(path: Path) -> dict[str, Any]:
    """The envelopes of ``path`` through a processor of one partition with windows
    ``1m,5m,5m/1m`` and the default rules, in this process: events, seconds, windows,
    alerts, a digest of every closed window's line, alert and score and of the final
    checkpoint, and the file the windows' module was loaded from."""
    import msgspec

    from bench.worker_core import BATCH, WINDOWS
    from streams import windows
    from streams.processing import Processor
    from streams.settings import WorkerSettings

    messages = read_envelopes(path)
    events = sum(value.count(b"\n") + 1 for _, _, value in messages)
    specs = windows.parse_windows(WINDOWS)
    rules = WorkerSettings(windows=specs, rules="default").load_rules()
    processor = Processor(windows=specs, grace_ms=30_000, source="b/t", rules=rules)
    processor.load(0, None, -1)
    results = []
    started = time.perf_counter()
    for j in range(0, len(messages), BATCH):
        results.append(
            processor.process(messages[j : j + BATCH], now_ms=PROCESSED_AT_MS, checkpoint=False)
        )
    seconds = time.perf_counter() - started
    digest, encode = hashlib.sha256(), msgspec.json.encode
    for result in results:
        for record in result.closed:
            digest.update(record.line())
        digest.update(encode(result.alerts))
        digest.update(encode(result.scores))
    digest.update(processor.states[0].snapshot())
    return {
        "rows": events,
        "seconds": seconds,
        "windows": sum(len(r.closed) for r in results),
        "alerts": sum(len(r.alerts) for r in results),
        "scores": sum(len(r.scores) for r in results),
        "digest": digest.hexdigest(),
        "module": windows.__file__,
    }


def child(module: str, arguments: list[str], *, sources: bool, quiet: bool = True) -> Any:
    """The JSON that ``python -m module arguments`` prints, run in a new process: the
    build where there is one, or the sources (``sources``: ``VIGIL_PURE_PYTHON=1``);
    its standard error kept for a failure's message (``quiet``) or shown as it runs."""
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_PURE_PYTHON"}
    if sources:
        env["VIGIL_PURE_PYTHON"] = "1"
    command = [sys.executable, "-m", module, *arguments]
    errors = subprocess.PIPE if quiet else None
    done = subprocess.run(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{module} {' '.join(arguments)} failed:\n{done.stderr or ''}")
    return json.loads(done.stdout)


def measure(paths: list[Path], *, sources: bool, workload: str = "backtest") -> dict[str, Any]:
    """:func:`backtest_files` (or, for the ``processor`` workload, :func:`process_file`
    of one file) in a new process: the build where there is one, or the sources
    (``sources``)."""
    return child("bench.compiled", [f"--{workload}", *map(str, paths)], sources=sources)  # type: ignore[no-any-return]


def compare(
    paths: list[Path], rounds: int, workload: str = "backtest", label: str | None = None
) -> dict[str, Any]:
    """Each side's fastest round of ``workload`` over ``paths``, and whether their
    digests are the same; the figures named by ``label`` (default: the workload)."""
    best: dict[str, dict[str, Any]] = {}
    for turn in range(rounds):
        for side in ("compiled", "sources"):
            print(f"  {workload}, round {turn + 1}/{rounds}: {side}", file=sys.stderr)
            got = measure(paths, sources=side == "sources", workload=workload)
            if side not in best or got["seconds"] < best[side]["seconds"]:
                best[side] = got
    built, plain = best["compiled"], best["sources"]
    name = label or workload
    unit = "rows" if workload == "backtest" else "events"
    speed = {side: round(r["rows"] / r["seconds"]) for side, r in best.items()}
    return {
        f"{name} {unit}": built["rows"],
        f"{name} alerts": built["alerts"],
        **{f"{name} {k}": built[k] for k in ("windows", "scores") if k in built},
        f"{name} {unit}/s, compiled": speed["compiled"],
        f"{name} {unit}/s, sources": speed["sources"],
        f"{name}, compiled against sources": round(speed["compiled"] / speed["sources"], 3),
        f"{name}, the same results": built["digest"] == plain["digest"],
        f"{name}, compiled module": Path(built["module"]).name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--series", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--backtest", nargs="+", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--processor", nargs=1, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backtest:
        print(json.dumps(backtest_files(args.backtest)))
        return
    if args.processor:
        print(json.dumps(process_file(args.processor[0])))
        return
    from bench import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write(Path(tmp), args.seed)
        paths = sorted((args.shared / "nab" / "data").rglob("*.csv"))
        paths += sorted((Path(tmp) / "data").rglob("*.csv"))
        result = {"files": len(paths), **compare(paths, args.rounds)}
        workloads = ["backtest"]
        for series in args.series:
            envelopes = Path(tmp) / f"envelopes_{series}"
            write_envelopes(envelopes, args.events, series)
            workload = f"processor at {series:,} series"
            result.update(compare([envelopes], args.rounds, "processor", workload))
            workloads.append(workload)
    emit(result)
    for workload in workloads:
        if not result[f"{workload}, the same results"]:
            sys.exit(f"the {workload}: the compiled build and its sources gave other results")
        if not is_build(result[f"{workload}, compiled module"]):
            sys.exit("no compiled build ran: pip install -e . builds one (with a C compiler)")


if __name__ == "__main__":
    main()

"""NAB score of the default detector: ``vigil backtest --corpus`` over the NAB data, then
``nab_score.py`` for the standard, low-FP and low-FN profiles, and the backtest speed.

Published detectors re-scored on the same 35 files (issue 6): ARTime 67.5, Numenta HTM
66.5, contextOSE 61.2, KNN-CAD 52.9, Random Cut Forest 47.9, River GaussianScorer 26.4.

    python -m bench.nab [--shared ../shared]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import emit

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).parents[2] / "shared"))
    args = parser.parse_args()
    shared = Path(args.shared)
    out = Path(tempfile.mkdtemp(prefix="vigil-nab-"))
    started = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "backtest",
            "--corpus",
            str(shared / "nab" / "data"),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    rows = int(re.search(r"(\d+) rows", run.stderr)[1])  # type: ignore[index]
    result: dict[str, float | int] = {"files": len(list(out.rglob("*.csv"))), "rows": rows}
    result["backtest_rows_per_s"] = round(rows / elapsed)
    for profile in PROFILES:
        scored = subprocess.run(
            [
                sys.executable,
                str(shared / "tools" / "nab_score.py"),
                "--nab",
                str(shared / "nab"),
                "--detections",
                str(out),
                "--profile",
                profile,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result[f"nab_{profile}"] = float(re.search(r"score (-?[\d.]+)", scored)[1])  # type: ignore[index]
    emit(result)


if __name__ == "__main__":
    main()

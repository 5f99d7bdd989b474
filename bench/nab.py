"""NAB score of the default detector: ``vigil backtest --corpus`` over the NAB data, then
``nab_score.py`` for the standard, low-FP and low-FN profiles, and the backtest speed.

Published detectors re-scored on the same 35 files (issue 6): ARTime 67.5, Numenta HTM
66.5, contextOSE 61.2, KNN-CAD 52.9, Random Cut Forest 47.9, River GaussianScorer 26.4.

The default detector was chosen by looking at these scores, so they flatter it. As a
check on how much a score depends on which files it meets, the standard score is also
printed for each half of the files (alternate files in sorted order): a detector that
only fits some files shows a wide gap between the halves.

    python -m bench.nab [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import emit

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def score(shared: Path, out: Path, profile: str, files: list[str] | None = None) -> float:
    command = [
        sys.executable,
        str(shared / "tools" / "nab_score.py"),
        "--nab",
        str(shared / "nab"),
        "--detections",
        str(out),
        "--profile",
        profile,
        *(["--files", ",".join(files)] if files else []),
    ]
    scored = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"score (-?[\d.]+)", scored)[1])  # type: ignore[index]


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
        result[f"nab_{profile}"] = score(shared, out, profile)
    labelled = sorted(json.loads((shared / "nab" / "labels" / "combined_windows.json").read_text()))
    for half, files in (("a", labelled[0::2]), ("b", labelled[1::2])):
        result[f"nab_standard_half_{half}"] = score(shared, out, "standard", files)
    emit(result)


if __name__ == "__main__":
    main()

"""How strong the unit tests are: mutation testing of the pure core with mutmut.

mutmut changes one thing at a time in the modules ``[tool.mutmut] only_mutate`` names
(an operator, a constant, a comparison, a returned value...) and runs the unit tests
that reach the changed function; a mutant the tests still pass on *survived*. The score
of a module is the share of its mutants killed (a timeout counts as killed: the tests
noticed). Prints the score per module as JSON and a table, and writes the survivors,
one per line, to ``bench/results/mutation-survivors.txt`` (``mutmut show NAME`` shows
one's change). Too slow for every CI run (about half an hour on two cores).

    pip install mutmut   # not an extra: it needs click >= 8.4.2, faust-streaming < 8.4
                         # (pip warns; the unit tests use no click)
    python -m bench.mutation            # all modules, two processes
    python -m bench.mutation --report   # the last run's figures, without running again
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.report import emit

ROOT = Path(__file__).resolve().parents[1]
KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failing tests, a timeout, a type check
SURVIVED = {0}
NO_TESTS = {5, 33}


def run(children: int) -> None:
    """``mutmut run`` in the repository (it works in ``mutants/``), its output shown."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(children)]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "CI": ""})
    if done.returncode != 0:
        raise SystemExit(f"mutmut run exited with {done.returncode}")


def tally() -> tuple[dict[str, collections.Counter], list[str]]:
    """Per module, mutants by outcome; the names of the survivors."""
    by_module: dict[str, collections.Counter] = {}
    survivors = []
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(ROOT / "mutants")).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = by_module.setdefault(module, collections.Counter())
        for name, code in codes.items():
            if code in KILLED:
                counts["killed"] += 1
            elif code in SURVIVED:
                counts["survived"] += 1
                survivors.append(name)
            elif code in NO_TESTS:
                counts["no_tests"] += 1
                survivors.append(name)
            elif code is None:
                counts["not_checked"] += 1
            else:
                counts["other"] += 1
    return by_module, survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only report the last run")
    args = parser.parse_args()
    if not args.report:
        run(args.max_children)
    by_module, survivors = tally()
    if not by_module:
        raise SystemExit("no mutmut results under mutants/: run without --report first")
    result: dict[str, object] = {}
    for module, counts in sorted(by_module.items()):
        checked = counts["killed"] + counts["survived"] + counts["no_tests"]
        result[f"{module} mutants"] = sum(counts.values())
        result[f"{module} killed"] = counts["killed"]
        result[f"{module} survived"] = counts["survived"] + counts["no_tests"]
        result[f"{module} score"] = round(counts["killed"] / checked, 3) if checked else None
    out = ROOT / "bench" / "results" / "mutation-survivors.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text("".join(f"{name}\n" for name in survivors))
    emit(result)
    print(f"\n{len(survivors)} survivors listed in {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

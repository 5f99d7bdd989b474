"""What every benchmark prints: progress on stderr, then its figures as JSON and a table."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r  {label}: {done:>10,}/{total:,} ({rate:,.0f}/s)   ", end="", file=sys.stderr)


def emit(result: dict[str, Any]) -> None:
    print(file=sys.stderr)
    print(json.dumps(result))
    print()
    width = max(len(k) for k in result) + 2
    print(f"{'measure':<{width}}{'value':>14}")
    for key, value in result.items():
        number = isinstance(value, int) and not isinstance(value, bool)
        shown = f"{value:>14,}" if number else f"{value!s:>14}"
        print(f"{key:<{width}}{shown}")

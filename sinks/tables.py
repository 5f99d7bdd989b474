"""Tables people read: figures as text cells, aligned text tables and Markdown tables.

>>> cell(0.8333333), cell(1008.0), cell(None), cell(["search", "buy"])
('0.83', '1008', '-', 'search > buy')
"""

from __future__ import annotations

import math
from typing import Any

MAX_CELL = 48


def table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    rows = [_flat(r) for r in rows]
    columns = [k for k in rows[0] if not isinstance(rows[0][k], dict)]
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A row's ``trend`` (workflows) as columns of their own."""
    trend = row.get("trend")
    if not isinstance(trend, dict):
        return row
    return {
        **{k: v for k, v in row.items() if k != "trend"},
        **{f"Δ{k}": v for k, v in trend.items()},
    }


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return f"{int(value)}"
        return f"{value:.4g}" if abs(value) < 1e-2 or abs(value) >= 1e6 else f"{value:.2f}"
    if isinstance(value, list):
        value = " > ".join(map(str, value))
    text = str(value).replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """A Markdown table of ``columns`` (then a blank line); "(none)" without rows."""
    if not rows:
        return ["(none)", ""]
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]
    out = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in rows:
        out.append("| " + " | ".join(md_escape(cell(row.get(c))) for c in columns) + " |")
    return [*out, ""]

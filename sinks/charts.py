"""The HTML report: one self-contained file, charts drawn as inline SVG (no script, no
fetch), every text from the data escaped.

>>> "<svg" in line_chart([("00:00", {"p95": 1.0}), ("01:00", {"p95": 2.0})], unit="ms")
True
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

from sinks.tables import cell

COLORS = ("#3b6fd4", "#d9822b", "#2e9e6a", "#c23b4a", "#7a4fc9")
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330}
h1{font-size:22px}h2{font-size:18px;margin:0}h3{font-size:14px;margin:14px 0 6px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 8px;border-bottom:1px solid #e3e6ec}
th{text-align:left;color:#566}td.n{text-align:right;font-variant-numeric:tabular-nums}
.card{border:1px solid #d6dbe4;border-radius:8px;padding:16px;margin:18px 0}
.head{display:flex;gap:16px;align-items:center}.grid{display:flex;flex-wrap:wrap;gap:18px}
.badge{width:58px;height:58px;border-radius:50%;color:#fff;font:bold 22px system-ui;
display:flex;align-items:center;justify-content:center}
.muted{color:#667}ul{margin:4px 0 0 18px;padding:0}svg text{font:11px system-ui;fill:#445}
"""


def _nice(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value``.

    >>> _nice(1008.55), _nice(0.7), _nice(100)
    (2000, 1, 100)
    """
    for power in range(-3, 13):
        for step in (1, 2, 2.5, 5):
            if step * 10**power >= value:
                return step * 10**power
    return value


def line_chart(
    points: list[tuple[str, dict[str, float | None]]],
    *,
    unit: str,
    width: int = 520,
    height: int = 190,
    title: str = "",
) -> str:
    """Lines over labelled x positions; each dict maps a series name to its value."""
    names = list(dict.fromkeys(k for _, values in points for k in values))
    known = [v for _, values in points for v in values.values() if v is not None]
    top = _nice(max(known, default=1.0) or 1.0)
    left, right, upper, lower = 48, 12, 22, 26
    plot_w, plot_h = width - left - right, height - upper - lower
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return upper + plot_h * (1 - v / top)

    out = [f'<svg class="chart" role="img" width="{width}" height="{height}">']
    out.append(f"<title>{escape(title or ', '.join(names))}</title>")
    for k in range(5):
        v = top * k / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#e6e9ef"/><text x="{left - 4}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{escape(cell(v))}</text>'
        )
    for i in sorted({0, n // 2, n}) if points else []:
        label = escape(points[min(i, len(points) - 1)][0])
        anchor = "start" if i == 0 else "end" if i == n else "middle"
        out.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}">{label}</text>')
    for c, name in enumerate(names):
        color = COLORS[c % len(COLORS)]
        coords = [
            f"{x(i):.1f},{y(values[name]):.1f}"
            for i, (_, values) in enumerate(points)
            if values.get(name) is not None
        ]
        if len(coords) == 1:
            cx, cy = coords[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
        elif coords:
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                f'points="{" ".join(coords)}"/>'
            )
        out.append(
            f'<rect x="{left + 8 + c * 90}" y="6" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + 22 + c * 90}" y="15">{escape(name)} {escape(unit)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bar_chart(
    items: list[tuple[str, float, str]],
    *,
    width: int = 560,
    top: float | None = None,
    color: Any = None,
) -> str:
    """Horizontal bars: ``(label, value, note shown after the bar)``; ``color(fraction of
    top)`` picks each bar's colour (default: one colour)."""
    row, note_w = 22, 250
    label_w = min(200, 12 + 7 * max((len(label[:26]) for label, _, _ in items), default=8))
    height = row * len(items) + 8
    top = top or max((v for _, v, _ in items), default=1.0) or 1.0
    out = [f'<svg class="chart" role="img" width="{width}" height="{height}">']
    for i, (label, value, note) in enumerate(items):
        y = 4 + i * row
        w = max(1.0, (width - label_w - note_w) * max(value, 0) / top)
        fill = color(value / top) if color else COLORS[0]
        out.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label[:26])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="14" fill="{fill}" rx="2"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14}">{escape(note)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if isinstance(r.get(c), int | float) else ""}">'
            f"{escape(cell(r.get(c)))}</td>"
            for c in columns
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _color(score: float) -> str:
    """Green for good (80 and up), orange, red (under 60): scores and their parts."""
    return "#2e9e6a" if score >= 80 else "#d9822b" if score >= 60 else "#c23b4a"


def _good(fraction: float) -> str:
    return _color(100 * fraction)


def _heavy(fraction: float) -> str:
    return COLORS[3] if fraction >= 0.5 else COLORS[0]


def workflow_charts(w: dict[str, Any]) -> dict[str, str]:
    """One workflow's charts by name: duration, success, score components, bottlenecks."""
    timeline = w["timeline"]
    durations = line_chart(
        [(p["t"][11:16], {"p50": p["p50_ms"], "p95": p["p95_ms"]}) for p in timeline],
        unit="ms",
        title=f"{w['workflow']} duration",
    )
    success = line_chart(
        [(p["t"][11:16], {"success %": 100 * (p["success_rate"] or 0)}) for p in timeline],
        unit="",
        title=f"{w['workflow']} success rate",
    )
    components = bar_chart(
        [
            (name, c["points"] / c["max"], f"{c['points']:g}/{c['max']} {c['why']}")
            for name, c in w["components"].items()
        ],
        top=1.0,
        color=_good,
    )
    steps = bar_chart(
        [
            (s["step"], s["share"], f"{s['share']:.0%} · p95 {cell(s['p95_ms'])} ms")
            for s in w["bottlenecks"]
        ],
        top=1.0,
        color=_heavy,
    )
    return {"duration": durations, "success": success, "score": components, "bottlenecks": steps}


def section_chart(section: dict[str, Any]) -> str | None:
    """The bar chart of a report section: its rows ranked by its chart column."""
    column = section.get("chart")
    rows = [r for r in section["rows"] if isinstance(r.get(column), int | float)]
    if not column or not rows:
        return None
    top = sorted(rows, key=lambda r: -r[column])[:12]
    label = section["label"]
    return bar_chart([(str(r.get(label, "")), float(r[column]), cell(r[column])) for r in top])


def charts(data: dict[str, Any]) -> dict[str, str]:
    """Every chart of a report as standalone SVG, by a file name (without extension)."""
    out = {}
    for w in data["workflows"]:
        for name, svg in workflow_charts(w).items():
            out[_slug(f"{w['workflow']}-{name}")] = svg
    for section in data.get("sections", []):
        chart = section_chart(section)
        if chart is not None:
            out[_slug(section["title"])] = chart
    return {name: _standalone(svg) for name, svg in out.items()}


#: What a chart takes from the page's style when it stands alone.
_ALONE = (
    "<style>text{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;font-size:11px;"
    "fill:#445}</style>"
)


def _standalone(svg: str) -> str:
    head, _, rest = svg.partition(">")
    width, height = _size(head)
    return (
        head.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
        + f' viewBox="0 0 {width} {height}">{_ALONE}'
        + f'<rect width="{width}" height="{height}" fill="#fff"/>{rest}'
    )


def _size(head: str) -> tuple[str, str]:
    found = dict(re.findall(r'(width|height)="([\d.]+)"', head))
    return found.get("width", "600"), found.get("height", "200")


def write_charts(data: dict[str, Any], directory: Path, *, png: bool = True) -> list[Path]:
    """Every chart of a report as ``NAME.svg`` (and ``NAME.png``, drawn by resvg) in
    ``directory``; returns the files written."""
    import resvg_py

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, svg in charts(data).items():
        path = directory / f"{name}.svg"
        path.write_text(svg, encoding="utf-8")
        written.append(path)
        if png:
            image = directory / f"{name}.png"
            image.write_bytes(bytes(resvg_py.svg_to_bytes(svg_string=svg, zoom=2.0)))
            written.append(image)
    return written


def _slug(text: str) -> str:
    """A file name from any text: letters, digits and dashes.

    >>> _slug("wf'; DROP / x")
    'wf-drop-x'
    """
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split()) or "chart"


def _section(section: dict[str, Any]) -> str:
    chart = section_chart(section)
    return f"""
<section class="card"><h2>{escape(section["title"])}</h2>{chart or ""}
{_table(section["rows"], section["columns"])}</section>"""


def _workflow(w: dict[str, Any]) -> str:
    drawn = workflow_charts(w)
    durations, success, components, steps = (
        drawn["duration"], drawn["success"], drawn["score"], drawn["bottlenecks"]
    )  # fmt: skip
    tips = "".join(f"<li>{escape(r)}</li>" for r in w["recommendations"])
    trend = w["trend"]["p95_ms_pct"]
    return f"""
<section class="card workflow">
  <div class="head">
    <div class="badge" style="background:{_color(w["score"])}">{w["score"]}</div>
    <div><h2>{escape(w["workflow"])}</h2>
    <div class="muted">{escape(w["service"])} · {w["runs"]} runs ·
    success {escape(cell(100 * (w["success_rate"] or 0)))} % ·
    p50 {escape(cell(w["p50_ms"]))} ms · p95 {escape(cell(w["p95_ms"]))} ms
    (trend {escape(cell(trend))} %) · {w["alerts_fired"]} alerts fired,
    {w["anomalies"]} anomalies</div></div>
  </div>
  <div class="grid">
    <div><h3>Score components</h3>{components}</div>
    <div><h3>Recommendations</h3><ul>{tips}</ul></div>
    <div><h3>Duration</h3>{durations}</div>
    <div><h3>Success rate</h3>{success}</div>
    <div><h3>Where the time goes (bottlenecks)</h3>{steps}</div>
  </div>
  <h3>Alerts</h3>{_table(w["alerts"], ["at", "rule", "state", "severity", "value", "series"])}
  <h3>Resource use</h3>{_table(w["resources"], ["resource", "samples", "mean", "p95", "max"])}
</section>"""


def html(data: dict[str, Any]) -> str:
    summary = _table(
        [
            {
                "workflow": w["workflow"],
                "score": w["score"],
                "runs": w["runs"],
                "success %": 100 * (w["success_rate"] or 0),
                "p95 ms": w["p95_ms"],
                "p95 trend %": w["trend"]["p95_ms_pct"],
                "alerts": w["alerts_fired"],
            }
            for w in data["workflows"]
        ],
        ["workflow", "score", "runs", "success %", "p95 ms", "p95 trend %", "alerts"],
    )
    errors = bar_chart(
        [(f"{e['service']}/{e['type']}", e["count"], str(e["count"])) for e in data["errors"]]
    )
    period = f"{data['from']} to {data['to']}"
    title = data.get("title") or "Vigil report"
    flows = ""
    if data["workflows"] or data.get("kind", "workflows") in ("workflows", "comprehensive"):
        flows = f"""<h3>Workflows, worst score first</h3>{summary}
{"".join(_workflow(w) for w in data["workflows"])}
<section class="card"><h2>Top errors</h2>{errors if data["errors"] else "none"}</section>"""
    sections = "".join(_section(s) for s in data.get("sections", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(title)} {escape(period)}</title><style>{CSS}</style></head>
<body><h1>{escape(title)}</h1><p class="muted">{escape(period)}</p>
{flows}{sections}
</body></html>
"""

"""The reports of seeds 001 and 002 through the real pipeline: usage, performance,
reliability and comprehensive reports beside the per-workflow one, with a title, a period
and a choice of workflows, from the worker over HTTP and from ``vigil report``, whose
charts are also written as standalone SVG and PNG files."""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from producers import Client

pytestmark = pytest.mark.integration

SECTIONS = {
    "usage": ["Features", "Most active users", "Common sequences", "Parameter combinations",
              "Parameters that go with failures", "Data sizes (power of ten)", "Satisfaction"],
    "performance": ["Operations (spans)", "What runs used", "Phases", "Resources", "Allocations",
                    "Models", "Forecasts (next hour, and six hours ahead)", "Optimizations"],
    "reliability": ["Error types", "Errors by severity and impact", "Failure modes",
                    "Errors that come together", "Recoveries per step", "Alerts per rule"],
}  # fmt: skip


def publish(vigil: Client) -> None:
    for i, fmt in enumerate(("csv", "csv", "xml", "json")):
        vigil.feature_used("export", user=f"u{i % 2}", size=10 ** (i + 1), params={"fmt": fmt},
                           ok=fmt != "xml", duration_ms=5.0 * (i + 1))  # fmt: skip
    vigil.satisfaction("export", 4, scale=5)
    vigil.model_effectiveness("ranker", accuracy=0.9)
    vigil.utilization("cache", used=5.0, allocated=10.0)
    vigil.optimization("export", "o-1", category="time", before=10.0, after=8.0)
    for workflow in ("etl", "train"):
        with vigil.execution(workflow) as run:
            with run.phase("main"), run.step("load", action="io"):
                pass
            with run.step("check"):
                run.recovery("retry", ok=True, step="check")
    vigil.error("disk full", name="DiskFull", severity="critical", impact="high")


async def test_each_kind_of_report_has_its_sections_and_charts_as_files(
    kafka_settings, start_worker, tmp_path
):
    worker = start_worker()
    async with Client(dataclasses.replace(kafka_settings, service="app")) as vigil:
        await asyncio.to_thread(publish, vigil)
        assert await vigil.flush(30)
        sent = vigil.stats()["sent"]
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == sent, 60)

    reports = {}
    for kind in ("usage", "performance", "reliability", "comprehensive", "workflows"):
        status, data = worker.call(f"/history/report?since=1h&kind={kind}")
        assert status == 200, data
        reports[kind] = data
        expected = SECTIONS.get(kind, [])
        if kind == "comprehensive":
            expected = [t for k in ("usage", "performance", "reliability") for t in SECTIONS[k]]
        assert [s["title"] for s in data["sections"]] == expected, kind
        assert data["title"] == f"Vigil {kind} report"
    # Sections hold what the history queries answer for the same period.
    status, usage = worker.call("/history/usage?since=1h")
    (features,) = (s for s in reports["usage"]["sections"] if s["title"] == "Features")
    assert features["rows"] == usage["features"]
    failing = next(s for s in reports["usage"]["sections"] if s["title"].startswith("Parameters"))
    assert [(r["param"], r["value"]) for r in failing["rows"]] == [("fmt", '"xml"')]
    assert sorted(w["workflow"] for w in reports["comprehensive"]["workflows"]) == ["etl", "train"]
    assert reports["usage"]["workflows"] == []

    # A title, a choice of workflows, and a period that ends before anything happened.
    status, one = worker.call("/history/report?since=1h&workflows=etl&title=Ops%20weekly")
    assert one["title"] == "Ops weekly" and [w["workflow"] for w in one["workflows"]] == ["etl"]
    past = quote((datetime.now(UTC) - timedelta(hours=2)).isoformat())
    status, empty = worker.call(f"/history/report?since=3h&until={past}&kind=comprehensive")
    assert status == 200 and empty["workflows"] == []
    assert all(s["rows"] == [] for s in empty["sections"])
    status, bad = worker.call("/history/report?kind=weekly")
    assert status == 400 and "weekly" in bad["error"]

    # vigil report from the command line: markdown with every section, and the charts.
    charts = tmp_path / "charts"
    out = tmp_path / "report.md"
    env = {**worker.env, "PATH": "/usr/bin:/bin"}  # it asks the worker at VIGIL_WEB_PORT
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "report", "--kind", "comprehensive", "--since",
         "1h", "--format", "md", "-o", str(out), "--charts", str(charts), "--title",
         "All of it"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# All of it:")
    for title in (t for k in ("usage", "performance", "reliability") for t in SECTIONS[k]):
        assert f"## {title}" in text
    svgs = sorted(p.stem for p in charts.glob("*.svg"))
    assert sorted(p.stem for p in charts.glob("*.png")) == svgs
    assert {"etl-duration", "train-bottlenecks", "features", "error-types"} <= set(svgs)
    for path in charts.glob("*.png"):  # drawn at twice the SVG's size
        png = path.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
        width, height = struct.unpack(">II", png[16:24])
        svg = path.with_suffix(".svg").read_text()
        assert f'width="{width // 2}" height="{height // 2}"' in svg, path.name
    assert all(p.read_text().startswith('<svg xmlns="http://www.w3.org/2000/svg"')
               for p in charts.glob("*.svg"))  # fmt: skip

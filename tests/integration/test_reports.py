"""``vigil report`` on the generated history: the figures, and the HTML page
rendered in headless Chromium."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from sinks import catalog, charts, reports
from tests.browser import chromium
from tests.history_data import HOSTILE_WORKFLOW, HOUR

pytestmark = pytest.mark.integration

WORKFLOW_KINDS = reports.WORKFLOW_KINDS


@pytest.fixture(scope="module")
def report(history_store):
    store, data = history_store
    now = datetime.fromtimestamp(data.now_ms / 1000, UTC)
    return catalog.run(store, "report", {"since": "6h"}, now=now), data


def test_each_workflow_has_a_score_from_its_components_and_the_figures_behind_it(report):
    out, data = report
    assert {w["workflow"] for w in out["workflows"]} == {"etl", HOSTILE_WORKFLOW}
    start = data.now_ms - 6 * HOUR
    for w in out["workflows"]:
        points = sum(c["points"] for c in w["components"].values())
        assert 0 <= w["score"] <= 100 and abs(w["score"] - points) <= 0.5
        ends = [e for e in data.of("execution.end", name=w["workflow"]) if e["ts"] >= start]
        assert w["runs"] == len(ends)
        assert w["success_rate"] == pytest.approx(sum(e["ok"] for e in ends) / len(ends))
        shares = {b["step"]: b["share"] for b in w["bottlenecks"]}
        assert sum(shares.values()) == pytest.approx(1.0)
        assert shares["load"] > shares["extract"]  # load runs twice as long in the data
        assert sum(p["runs"] for p in w["timeline"]) == w["runs"]
    assert [w["score"] for w in out["workflows"]] == sorted(w["score"] for w in out["workflows"])


def test_alerts_of_the_period_are_counted_per_workflow_and_cost_points(report):
    out, data = report
    start = data.now_ms - 6 * HOUR
    for w in out["workflows"]:
        fired = sum(
            a.state == "firing"
            and a.name == w["workflow"]
            and a.kind in WORKFLOW_KINDS
            and a.at >= start
            for a in data.alerts
        )
        assert w["alerts_fired"] == fired
        assert w["components"]["alerts"]["points"] == pytest.approx(20 * (1 - min(fired, 5) / 5))
    assert any(w["alerts_fired"] for w in out["workflows"])


def test_markdown_and_csv_carry_every_workflow(report):
    out, _ = report
    md = reports.markdown(out)
    assert md.count("\n## ") == len(out["workflows"]) + 1  # and the errors section
    assert HOSTILE_WORKFLOW.replace("|", "\\|") in md
    rows = list(csv.DictReader(io.StringIO(reports.csv_text(out))))
    assert {r["workflow"]: int(r["score"]) for r in rows} == {
        w["workflow"]: w["score"] for w in out["workflows"]
    }


async def test_the_html_report_renders_in_chromium_with_charts_and_no_errors(
    report, chromium_binary, tmp_path
):
    out, _ = report
    page_file = tmp_path / "report.html"
    page_file.write_text(charts.html(out), encoding="utf-8")
    async with chromium(chromium_binary) as page:
        await page.open(page_file.as_uri())
        cards = await page.evaluate("document.querySelectorAll('section.workflow').length")
        charts_drawn = await page.evaluate(
            "[...document.querySelectorAll('svg.chart')].filter(s => s.getBBox().width > 0"
            " && s.querySelector('polyline, rect, circle')).length"
        )
        lines = await page.evaluate("document.querySelectorAll('svg.chart polyline').length")
        text = await page.evaluate("document.body.innerText")
        scripts = await page.evaluate("document.querySelectorAll('script').length")
        png = await page.screenshot(tmp_path / "report.png")
        assert page.problems == []
    assert cards == len(out["workflows"])
    assert charts_drawn >= 4 * cards and lines >= cards
    assert HOSTILE_WORKFLOW in text and scripts == 0  # the name is text, not markup
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

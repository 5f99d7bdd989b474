"""The dashboard while ``vigil demo`` runs (its own broker, worker and simulated
workflow engine): the page is live, shows what the worker's API says, and the demo's
latency shift, once it fires an alert, is on the page within 2 s."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.browser import chromium
from vigil import webclient

pytestmark = pytest.mark.integration

SHOWN = """(() => {
  const o = window.vigilOverview;
  if (!o) return null;
  const text = (id) => document.getElementById(id).textContent;
  return {
    at: o.at, events: o.events, workflows: o.workflows.map(w => w.workflow),
    shown_events: text('events'), shown_firing: text('firing'),
    alert_rules: [...document.querySelectorAll('#alerts tbody tr[data-fingerprint]')]
        .map(r => r.cells[2].textContent),
    status: text('status'),
  };
})()"""


async def test_the_dashboard_follows_the_demo_and_shows_its_alert_within_2_s(
    chromium_binary, tmp_path
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(tmp_path / "data")
    demo = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "demo", "--duration", "120", "--rate", "500"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert demo.stdout is not None
        url = None
        while url is None:
            line = demo.stdout.readline()
            assert line, "the demo ended before printing the dashboard address"
            found = re.search(r"live dashboard at (http://\S+/dashboard)", line)
            url = found.group(1) if found else None
        base = url.removesuffix("/dashboard")
        deadline = time.monotonic() + 60
        while True:  # the address is printed as the worker starts
            try:
                if webclient.call(f"{base}/ready", timeout=2)[0] == 200:
                    break
            except webclient.Unreachable:
                pass
            assert time.monotonic() < deadline and demo.poll() is None, "the worker never got ready"
            await asyncio.sleep(0.2)
        async with chromium(chromium_binary) as page:
            await page.open(url)
            deadline = time.monotonic() + 110
            seen_api_alert = None
            checked = 0
            while True:
                assert time.monotonic() < deadline, "no alert within the demo"
                shown = await page.evaluate(SHOWN)
                try:
                    status, api = await asyncio.to_thread(webclient.call, f"{base}/overview")
                except webclient.Unreachable:
                    pytest.fail(
                        f"the demo's worker stopped (demo: {demo.poll()}) before an alert showed"
                    )
                if shown and status == 200 and shown["status"] == "live":
                    # The page renders the overview it was pushed, and that overview is
                    # one the worker served: counts only grow, names agree.
                    assert shown["shown_events"] == f"{shown['events']:,}"
                    assert shown["events"] <= api["events"]
                    assert set(shown["workflows"]) <= {w["workflow"] for w in api["workflows"]}
                    checked += 1
                    firing = [a["rule"] for a in api["alerts"] if a["status"] == "firing"]
                    if firing and seen_api_alert is None:
                        seen_api_alert = time.monotonic()
                    if seen_api_alert is not None and shown["alert_rules"]:
                        break
                if seen_api_alert is not None:
                    lag = time.monotonic() - seen_api_alert
                    assert lag < 2.0, f"the API had a firing alert {lag:.2f} s before the page"
                await asyncio.sleep(0.1)
            print(
                f"checked {checked} times; page lag under {time.monotonic() - seen_api_alert:.2f} s"
            )
            assert checked > 10 and shown["workflows"]
            await page.screenshot(tmp_path / "demo-overview.png")
            assert page.problems == []
    finally:
        demo.send_signal(signal.SIGINT)  # the demo stops its worker and broker
        demo.wait(timeout=60)

"""The README's instrumentation example runs as printed and its events arrive."""

from __future__ import annotations

import asyncio
import collections
import re
from pathlib import Path

import pytest

from producers.topics import Topics
from tests.topics import read_events

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("## Instrumenting a service or a workflow") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


async def test_the_readme_example_runs_and_its_events_arrive(broker, namespace, monkeypatch):
    code = _example()
    assert len(code.strip().splitlines()) <= 16, "the example stays short"
    for name, value in {
        "VIGIL_KAFKA_BOOTSTRAP": broker.bootstrap,
        "VIGIL_NAMESPACE": namespace,
        "VIGIL_SERVICE": "readme",
        "VIGIL_RESOURCE_INTERVAL_S": "0",
    }.items():
        monkeypatch.setenv(name, value)
    await asyncio.to_thread(exec, compile(code, str(README), "exec"), {})
    # resize timings, rows_loaded, the execution's events and spans (its own, the phase's),
    # and the runtime, published once at start
    expected = 1000 + 1 + 8 + 1
    events = await read_events(broker.bootstrap, Topics.for_namespace(namespace).events, expected)
    names = collections.Counter((e["kind"], e["name"]) for _, e in events)
    assert names[("metric", "duration_ms")] == 1000
    assert names[("metric", "rows_loaded")] == 1
    assert names[("execution.end", "nightly-etl")] == 1
    assert len(events) == expected and {e["service"] for _, e in events} == {"readme"}
    assert names[("span", "fetch")] == 1 and names[("log", "vigil.runtime")] == 1
    end = next(e for _, e in events if e["kind"] == "execution.end")
    assert end["ok"] and end["attrs"]["steps_done"] == 2 and end["attrs"]["cpu_ms"] >= 0

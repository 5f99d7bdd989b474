"""What `vigil demo` shows on a fresh start: its simulator emits every record of the five
seeds, so each history query the dashboard and the reports read answers with rows. The
simulator's events go through the worker's processor and the real ClickHouse writer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from sinks.catalog import run
from sinks.queries import ReadOnly
from tests.conftest import open_store
from tests.history_data import History, store_history
from vigil.simulation import Simulation

pytestmark = pytest.mark.integration

HOUR = 3_600_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    now = int(time.time()) // 3600 * HOUR
    start = now - 2 * HOUR  # on an hour: the simulator's hourly optimization report falls in
    events = list(Simulation(seed=7, start_ms=start, requests_per_s=4).advance(now - start))
    data_dir = tmp_path_factory.mktemp("demo")
    store_history(History(now_ms=now, events=events), data_dir)
    with open_store(data_dir) as client:
        yield ReadOnly(client, "vigil"), now


def ask(demo, name: str, **params: str):
    store, now = demo
    return run(store, name, {"since": "3h", **params}, now=datetime.fromtimestamp(now / 1000, UTC))


@pytest.mark.parametrize(
    "name, params, part",
    [
        ("phases", {}, None),
        ("critical_path", {"workflow": "train"}, "steps"),
        ("recoveries", {}, "steps"),
        ("execution_resources", {}, None),
        ("runtimes", {}, None),
        ("distributions", {}, "combos"),
        ("distributions", {}, "sizes"),
        ("feedback", {}, None),
        ("models", {}, None),
        ("utilization", {}, None),
        ("optimizations", {}, None),
        ("failure_modes", {}, None),
        ("operations", {}, None),
        ("usage", {}, "sequences"),
    ],
)
def test_every_seed_query_answers_with_rows_on_the_demo(demo, name, params, part):
    answer = ask(demo, name, **params)
    rows = answer[part] if part else answer
    assert rows, (name, answer)


def test_the_demo_records_carry_what_the_seeds_ask_for(demo):
    errors = ask(demo, "errors")
    assert {r["severity"] for r in errors["impact"]} == {"error", "critical"}
    assert any(r["recovery_attempted"] for r in errors["impact"])
    steps = ask(demo, "steps")
    assert {r["action"] for r in steps["by_action"]} == {"io", "compute", "network"}
    resources = {r["resource"] for r in ask(demo, "resources")}
    assert {"container_memory_mb", "container_cpu_percent"} <= resources
    assert {r["workflow"] for r in ask(demo, "phases")} == {"etl", "train", "report"}
    # A request traced across two services: one tree, the api's span above the reports'.
    ops = {(o["service"], o["operation"]) for o in ask(demo, "operations")}
    assert ("reports", "render summary") in ops and ("api", "call reports") in ops
    store, now = demo
    traced = f"t-req-{now - 2 * HOUR + 2000:x}"  # a request every two seconds is traced
    tree = run(store, "trace", {"trace_id": traced}, now=datetime.fromtimestamp(now / 1000, UTC))
    (root,) = tree["roots"]
    (call,) = root["children"]
    (served,) = call["children"]
    assert [(n["service"], n["kind"]) for n in (root, call, served)] == [
        ("api", "server"), ("api", "client"), ("reports", "server")
    ]  # fmt: skip

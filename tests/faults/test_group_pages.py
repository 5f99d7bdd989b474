"""Every worker answers every live page for the whole group: one worker, a second and a
third that join, one that stops answering and is then SIGKILLed.

Three worker processes share one store (``vigil chserver``) and the events topic's six
partitions (with six, Faust's assignor gives a third worker two of them; with four it
keeps two on each of the first two workers). The events are stamped two hours ahead, so
no window closes by the wall clock while the test runs and what the pages show holds
still between two looks. At each stage every page is asked of every worker and compared
with what the test works out itself:

- ``/overview`` and ``/alerts`` equal the union of what each worker says it holds
  (``/held``: its partitions with their executions, workflows and alerts), each
  partition held by exactly one worker;
- the union equals the published events: every workflow, and exactly the executions that
  started and did not end, nothing missing and nothing extra;
- each series, execution and workflow page is the same from every worker and equal to
  the holding worker's own answer (``?scope=local``);
- across the third worker's join and the kill, nothing is lost or doubled: the stable
  figures equal those before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
from typing import Any
from urllib.parse import quote

import pytest

from producers.events import WORKFLOW_KINDS, partition_for, routing_key, series_key
from tests.faults.common import fault_env, publish_steadily
from tests.samples import simulated
from tests.topics import wait_committed

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 6_000
PARTITIONS = 6
AHEAD_MS = 2 * 3_600_000


def _events() -> list[dict[str, Any]]:
    events = simulated(N, seed=43, minutes=30)
    return [{**e, "ts": e["ts"] + AHEAD_MS} for e in events]


def _get(worker, path: str) -> Any:
    status, body = worker.call(path)
    assert status == 200, (worker.port, path, status, body)
    return body


def _union(helds: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The partitions of every worker's ``/held``; each must be held by one worker only."""
    out: dict[int, dict[str, Any]] = {}
    for held in helds:
        for key, part in held["partitions"].items():
            assert int(key) not in out, f"partition {key} held twice: {helds}"
            out[int(key)] = part
    return out


def _stable(overview: dict[str, Any]) -> dict[str, Any]:
    """What the overview shows that does not move with the clock."""
    return {
        "partitions": overview["partitions"],
        "running": sorted(r["execution_id"] for r in overview["running"]),
        "running_total": overview["running_total"],
        "workflows": overview["workflows"],
        "alerts": sorted((a["fingerprint"], a["status"], a["value"]) for a in overview["alerts"]),
        "firing": overview["firing"],
    }


def _expected(parts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """:func:`_stable` of an overview, worked out from the partitions' parts."""
    alerts = [a for part in parts.values() for a in part["alerts"]]
    workflows = {n: v for part in parts.values() for n, v in part["workflows"].items()}
    return {
        "partitions": sorted(parts),
        "running": sorted(view["execution_id"] for p in parts.values() for _, view in p["running"]),
        "running_total": sum(len(part["running"]) for part in parts.values()),
        "workflows": [workflows[name] for name in sorted(workflows)],
        "alerts": sorted((a["fingerprint"], a["status"], a["value"]) for a in alerts),
        "firing": sum(a["status"] == "firing" for a in alerts),
    }


def _truth(events: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """The workflows and the executions that started and did not end, from the events."""
    flows = {e["name"] for e in events if e["kind"] in WORKFLOW_KINDS}
    started = {e["execution_id"] for e in events if e["kind"] == "execution.start"}
    ended = {e["execution_id"] for e in events if e["kind"] == "execution.end"}
    return flows, started - ended


def _once(workers: list[Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Every page from every worker against the union of what they hold; the stable part
    of the overview. Raises AssertionError when a page disagrees."""
    helds = [_get(w, "/held") for w in workers]
    parts = _union(helds)
    assert sorted(parts) == list(range(PARTITIONS)), f"partitions held: {sorted(parts)}"
    expected = _expected(parts)
    owner = {int(p): w for w, held in zip(workers, helds, strict=True) for p in held["partitions"]}

    flows, running = _truth(events)
    assert {w["workflow"] for w in expected["workflows"]} == flows
    assert set(expected["running"]) == running
    assert expected["running_total"] == len(running)
    assert expected["alerts"], "the rules fired: alerts to merge"

    local_alerts = sorted(
        (a["fingerprint"], a["status"]) for w in workers for a in _alerts(w, "?scope=local")
    )
    keys = sorted({series_key(e) for e in events})
    for w in workers:
        overview = _get(w, "/overview")
        assert _stable(overview) == expected, f"the overview of :{w.port}"
        assert overview["missing_partitions"] == []
        assert sorted(p for x in overview["workers"] for p in x["partitions"]) == sorted(parts)
        # The alerts page: every worker's own alerts, each once.
        assert sorted((a["fingerprint"], a["status"]) for a in _alerts(w)) == local_alerts
        for eid in sorted(running):
            view = _get(w, f"/executions/{eid}")
            assert (view["execution_id"], view["status"]) == (eid, "running")
        for flow in sorted(flows):
            assert _get(w, f"/workflows/{flow}")["workflow"] == flow
    for key in keys:
        event = next(e for e in events if series_key(e) == key)
        holder = owner[partition_for(routing_key(event), PARTITIONS)]
        path = f"/series/open?series={quote(key)}"
        own = _get(holder, path + "&scope=local")
        for w in workers:
            assert _get(w, path) == own, f"series {key} from :{w.port}"
    return expected


def _alerts(worker, query: str = "") -> list[dict[str, Any]]:
    return _get(worker, "/alerts" + query)["alerts"]


def agree(workers: list[Any], events: list[dict[str, Any]], timeout: float = 60) -> dict:
    """:func:`_once` until it passes (the group settles after a rebalance)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _once(workers, events)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _assigned(worker) -> set[int]:
    return set((worker.stats() or {}).get("assigned", []))


def _settled(workers: list[Any]) -> bool:
    """The workers' shares cover every partition once, and each worker's overview lists
    them all (the group's membership reached every member)."""
    shares = [_assigned(w) for w in workers]
    if sorted(p for s in shares for p in s) != list(range(PARTITIONS)):
        return False
    for w in workers:
        status, overview = w.call("/overview")
        if status != 200 or len(overview["workers"]) != len(workers):
            return False
    return True


def _wait_settled(workers: list[Any], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not _settled(workers):
        if time.monotonic() > deadline:
            views = [(w.port, _assigned(w), w.call("/overview")[1].get("workers")) for w in workers]
            raise AssertionError(f"the group did not settle: {views}")
        time.sleep(0.5)


async def test_every_worker_answers_for_the_group_as_workers_join_and_die(
    kafka_settings, start_worker, shared_store, tmp_path
):
    events = _events()
    kafka_settings = dataclasses.replace(kafka_settings, events_partitions=PARTITIONS)
    env = {
        "VIGIL_CLICKHOUSE_DSN": shared_store.dsn,
        "VIGIL_EVENTS_PARTITIONS": str(PARTITIONS),
        **fault_env(tmp_path),
    }
    workers: list[Any] = []

    def worker():
        workers.append(start_worker(VIGIL_DATA_DIR=str(tmp_path / f"w{len(workers)}"), **env))
        return workers[-1]

    worker()
    await asyncio.to_thread(_wait_settled, workers)
    envelopes = await publish_steadily(kafka_settings, events, per_second=5_000)
    await wait_committed(kafka_settings, envelopes, timeout=120)
    before = await asyncio.to_thread(agree, workers, events)

    # A second worker joins and takes half the partitions over (from the store, with no
    # event arriving since), then a third takes a third. The pages of each stay the same.
    for joined in (2, 3):
        worker()
        await asyncio.to_thread(_wait_settled, workers)
        shares = [_assigned(w) for w in workers]
        assert len(workers) == joined and all(shares), shares
        assert await asyncio.to_thread(agree, workers, events) == before

    # One stops answering: until the group notices, the others' pages say which
    # partitions they are missing (instead of silently showing less).
    victim = max(workers, key=lambda w: len(_assigned(w)))
    lost = _assigned(victim)
    survivors = [w for w in workers if w is not victim]
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        overview = await asyncio.to_thread(_get, survivors[0], "/overview")
        assert overview["missing_partitions"] == sorted(lost), overview["workers"]
        assert not set(overview["partitions"]) & lost
        stopped = [x for x in overview["workers"] if x["partitions"] == sorted(lost)]
        assert len(stopped) == 1 and stopped[0]["answered"] is False and stopped[0]["error"]
    finally:
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()

    # The survivors take its partitions over from the store: the same pages again.
    await asyncio.to_thread(_wait_settled, survivors)
    assert await asyncio.to_thread(agree, survivors, events) == before
    for w in survivors:
        assert w.stop() == 0

"""The usage records and analyses of seed 002 through the real pipeline: uses with their
duration, data size and parameter combination; sessions given and automatic; consent;
error and metric correlations; failure modes; then ``vigil forget USER`` on the store and
its archive. Every figure is compared with a recount of what was published."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

import producers
from producers import Client
from producers.privacy import Privacy
from producers.usage import combo
from tests.conftest import open_store

pytestmark = pytest.mark.integration

SECRET = "usage-test-key"
#: (user, fmt, rows, compress, session or None: automatic)
CALLS = [
    ("alice", "csv", 5, False, "web-1"),
    ("alice", "csv", 50, False, "web-1"),
    ("alice", "json", 500, True, "web-1"),
    ("bob", "csv", 7, False, None),
    ("bob", "xml", 70, False, None),
    ("bob", "xml", 7000, True, None),
    ("carol", "csv", 9, False, None),  # carol opted out: never recorded
    ("bob", "json", 0, False, None),
]


def export(user: str, fmt: str, rows: int, compress: bool = False) -> int:
    if fmt == "xml":
        raise ValueError("xml is not supported")
    return rows


def run_calls(vigil: Client) -> list[tuple]:
    """The uses, through the decorator; returns those that must be recorded."""
    tracked = vigil.track_usage(
        "export", user_arg="user", size_arg="rows", params=("fmt", "compress")
    )(export)
    vigil.opt_out("carol")
    for user, fmt, rows, compress, session in CALLS:
        block = producers.session(session) if session else contextlib.nullcontext()
        with block, contextlib.suppress(ValueError):
            tracked(user, fmt, rows, compress=compress)
    vigil.error(KeyError("secret"), {"user_id": "carol"})  # names carol: dropped
    vigil.feature_used("search", user="alice", duration_ms=12.5, size=3, params={"q": "x"})
    return [c for c in CALLS if c[0] != "carol"]


def publish_errors_and_metrics(vigil: Client, t0: int) -> None:
    """Errors that come together in two executions and apart in a third; three metric
    series over ten minutes: b = 2a, c = 100 - a."""

    @vigil.track_errors()
    def flaky(kind: type[Exception]) -> None:
        raise kind("boom")

    for execution, kinds in (("e1", ("TimeoutError", "ConnectionError")),
                             ("e2", ("TimeoutError", "ConnectionError")),
                             ("e3", ("TimeoutError",))):  # fmt: skip
        for kind in kinds:
            vigil.error(f"{kind} in {execution}", name=kind, execution_id=execution)
    for kind in (KeyError, KeyError, ValueError):
        with pytest.raises(kind):
            flaky(kind)
    for minute in range(10):
        a = float((minute * 37) % 11)
        ts = t0 + minute * 60_000
        vigil.metric("queue_depth", a, ts=ts)
        vigil.metric("workers_busy", 2 * a, ts=ts)
        vigil.metric("idle_percent", 100 - a, ts=ts)


async def test_usage_records_and_analyses_reach_history_and_forget_deletes_a_user(
    kafka_settings, start_worker, worker_env, tmp_path
):
    worker = start_worker()
    settings = dataclasses.replace(kafka_settings, service="app", privacy_secret=SECRET)
    hashed = Privacy("users", SECRET).user
    t0 = (int(time.time()) // 60 - 30) * 60_000
    async with Client(settings) as vigil:
        recorded = await asyncio.to_thread(run_calls, vigil)
        publish_errors_and_metrics(vigil, t0)
        assert await vigil.flush(30)
        sent, opted_out = vigil.stats()["sent"], vigil.stats()["opted_out"]
    assert opted_out == 2  # carol's use and the error that named her
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == sent, 60)

    # Uses: per feature, calls, failures, users and sessions, as recounted.
    status, usage = worker.call("/history/usage?since=2h")
    features = {f["feature"]: f for f in usage["features"]}
    assert features["export"]["calls"] == len(recorded)
    assert features["export"]["failures"] == sum(c[1] == "xml" for c in recorded)
    assert features["export"]["users"] == 2  # alice and bob; carol never left the host
    assert features["export"]["sessions"] == 2  # web-1, and bob's automatic one
    assert hashed("carol") not in {u["user"] for u in usage["users"]}
    assert features["search"]["calls"] == 1

    # Distributions: per combination, per parameter value, per power of ten of the size.
    status, dist = worker.call("/history/distributions?since=2h&feature=export")
    assert status == 200, dist
    expect = collections.Counter(combo({"compress": c[3], "fmt": c[1]}) for c in recorded)
    assert {r["combo"]: r["calls"] for r in dist["combos"]} == dict(expect)
    failing = {r["combo"]: r["failures"] for r in dist["combos"] if r["failures"]}
    assert failing == {"compress=false,fmt=xml": 1, "compress=true,fmt=xml": 1}
    assert all(r["mean_ms"] is not None and r["mean_ms"] >= 0 for r in dist["combos"])
    values = {(r["param"], r["value"]): r for r in dist["params"]}
    xml = values[("fmt", '"xml"')]
    base = 2 / len(recorded)
    assert (xml["calls"], xml["failures"]) == (2, 2) and xml["lift"] == pytest.approx(1 / base)
    assert values[("fmt", '"csv"')]["lift"] == 0.0
    sizes = collections.Counter(math.floor(math.log10(max(c[2], 1))) for c in recorded)
    assert {r["bucket"]: r["calls"] for r in dist["sizes"]} == dict(sizes)

    # Correlations: the pair of errors that came together twice; the metrics that move
    # together (r = 1) and against each other (r = -1).
    status, corr = worker.call("/history/correlations?since=2h&step=1m&service=app")
    assert status == 200, corr
    pairs = {(p["first"], p["second"]): p for p in corr["errors"]}
    together = pairs[("ConnectionError", "TimeoutError")]
    assert together["together"] == 2 and together["first_groups"] == 2
    assert together["second_groups"] == 3
    assert together["lift"] == pytest.approx(2 / (2 * 3 / together["groups"]))
    r = {(m["first"].split("|")[2], m["second"].split("|")[2]): m["r"] for m in corr["metrics"]}
    assert r[("queue_depth", "workers_busy")] == pytest.approx(1.0)
    assert r[("idle_percent", "queue_depth")] == pytest.approx(-1.0)

    # Failure modes: per function and error type.
    status, modes = worker.call("/history/failure_modes?since=2h&service=app")
    by = {(m["function"], m["type"]): m["errors"] for m in modes}
    flaky = "publish_errors_and_metrics.<locals>.flaky"
    assert by[(flaky, "KeyError")] == 2 and by[(flaky, "ValueError")] == 1

    # vigil forget: the worker stopped (the store is its own), then alice is deleted from
    # the tables and from the archive, and nobody else's rows are.
    assert worker.stop() == 0
    data_dir = worker_env["VIGIL_DATA_DIR"]
    env = {"VIGIL_DATA_DIR": data_dir, "VIGIL_PRIVACY_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    with open_store(tmp_path / "data") as client:
        before = rows_by_user(client, hashed)
    assert before["alice"] == {"events": 4, "feature_calls": 4}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    cli = [sys.executable, "-m", "vigil.cli"]
    archived = subprocess.run([*cli, "archive", "--before", tomorrow], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    assert archived.returncode == 0, archived.stderr
    gone = subprocess.run([*cli, "forget", "alice"], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    assert "8 rows of " + hashed("alice") in gone.stdout, gone.stdout  # 4 events, 4 calls
    restored = subprocess.run([*cli, "archive", "--restore"], env=env, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    with open_store(tmp_path / "data") as client:
        after = rows_by_user(client, hashed)
    assert after == {**before, "alice": {"events": 0, "feature_calls": 0}}


def rows_by_user(client, hashed) -> dict[str, dict[str, int]]:
    out = {}
    for user in ("alice", "bob", "carol"):
        h = hashed(user)
        events = client.query(
            "SELECT count() FROM vigil.events WHERE JSONExtractString(attrs, 'user') = {h:String}",
            parameters={"h": h},
        ).result_rows[0][0]
        calls = client.query(
            "SELECT count() FROM vigil.feature_calls WHERE user = {h:String}", parameters={"h": h}
        ).result_rows[0][0]
        out[user] = {"events": events, "feature_calls": calls}
    return out

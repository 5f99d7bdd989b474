"""Spans and workflow instrumentation: hooks, context managers, nesting, failures."""

from __future__ import annotations

import asyncio
import os
import time

import psutil
import pytest

from producers import current_execution, current_span
from producers.events import validate
from producers.measure import FIGURES, Measure
from tests.unit.sdk import NOW_MS, kinds, offline, wire
from vigil.simulation import Simulation


def test_spans_nest_into_one_trace_and_time_their_block():
    vigil = offline()
    with vigil.span("checkout") as root:
        with vigil.span("db.query", attrs={"table": "orders"}) as child:
            assert current_span() is child
        assert current_span() is root
    assert current_span() is None
    inner, outer = wire(vigil)
    assert inner["name"] == "db.query" and outer["name"] == "checkout"
    assert inner["trace_id"] == outer["trace_id"] == root.trace_id
    assert inner["parent_id"] == outer["span_id"] and "parent_id" not in outer
    assert inner["attrs"] == {"table": "orders"} and inner["ok"] is True
    assert 0 <= inner["value"] <= outer["value"]


def test_a_failing_span_records_the_error_and_reraises_the_same_exception():
    vigil = offline()
    boom = ValueError("bad input")
    with pytest.raises(ValueError) as caught, vigil.span("parse"):
        raise boom
    assert caught.value is boom
    [event] = wire(vigil)
    assert event["ok"] is False and event["status"] == "error"
    assert event["message"] == "bad input"


async def test_concurrent_tasks_each_get_their_own_trace():
    vigil = offline()

    async def handle(name: str) -> str:
        async with vigil.span(name) as span:
            await asyncio.sleep(0.01)
            with vigil.span(f"{name}.db"):
                await asyncio.sleep(0.01)
            return span.trace_id

    traces = await asyncio.gather(handle("a"), handle("b"))
    events = await asyncio.to_thread(wire, vigil)
    by_name = {e["name"]: e for e in events}
    assert by_name["a.db"]["trace_id"] == by_name["a"]["trace_id"] == traces[0]
    assert by_name["b.db"]["trace_id"] == by_name["b"]["trace_id"] == traces[1]
    assert traces[0] != traces[1]


def test_a_trace_is_sampled_whole():
    vigil = offline(sampling=(("span", 0.0),))
    with vigil.span("root"), vigil.span("child"):
        pass
    assert wire(vigil) == [] and vigil.stats()["sampled_out"] == 1


def test_an_execution_context_reports_every_hook_with_progress_and_totals():
    vigil = offline()
    with vigil.execution("etl", "run-1", total_steps=3, attrs={"source": "s3"}) as run:
        assert current_execution() is run
        with run.step("extract"):
            pass
        assert run.progress == pytest.approx(1 / 3)
        with run.step("transform"):
            run.recovery("retry", ok=True, step="transform", attempt=1)
        with run.step("load"):
            vigil.metric("rows", 120.0)
    events = wire(vigil)
    assert kinds(events) == [
        "execution.start",
        "step.start",
        "step.end",
        "step.start",
        "recovery",
        "step.end",
        "step.start",
        "metric",
        "step.end",
        "execution.end",
        "span",
    ]
    start, end = events[0], events[-2]
    assert start["attrs"] == {"total_steps": 3, "source": "s3"}
    assert start["trace_id"] == events[-1]["trace_id"]
    assert [e["attrs"]["index"] for e in events if e["kind"] == "step.start"] == [0, 1, 2]
    assert end["ok"] is True and end["status"] == "success"
    totals = {"steps_done": 3, "total_steps": 3, "recoveries": 1}
    assert {k: end["attrs"][k] for k in totals} == totals
    assert set(end["attrs"]) - set(totals) == set(FIGURES)  # what the run used
    assert events[4]["attrs"] == {"strategy": "retry", "attempt": 1}
    assert all(e["execution_id"] == "run-1" for e in events if e["kind"] != "metric")
    for event in events:
        validate(event, now_ms=NOW_MS)


def test_steps_carry_their_action_dependencies_and_phase_and_recoveries_their_action():
    vigil = offline()
    with vigil.execution("etl", "run-9") as run:
        with run.phase("fetch") as fetch:
            with run.step("download", action="network"):
                run.recovery("retry", ok=True, step="download")
            with run.step("unpack", after="download"):
                pass
        with run.step("load", action="io", after=["download", "unpack"]):
            pass
    events = wire(vigil)
    steps = [(e["kind"], e["step"], {k: v for k, v in e.get("attrs", {}).items() if k != "index"})
             for e in events if e["kind"] in ("step.start", "step.end")]  # fmt: skip
    download = {"action": "network", "phase": "fetch"}
    unpack = {"after": ["download"], "phase": "fetch"}
    load = {"action": "io", "after": ["download", "unpack"]}
    assert steps == [
        ("step.start", "download", download), ("step.end", "download", download),
        ("step.start", "unpack", unpack), ("step.end", "unpack", unpack),
        ("step.start", "load", load), ("step.end", "load", load),
    ]  # fmt: skip
    (recovery,) = (e for e in events if e["kind"] == "recovery")
    assert recovery["attrs"] == {"strategy": "retry", "action": "network"}
    spans = {e["name"]: e for e in events if e["kind"] == "span"}
    assert spans["fetch"]["attrs"] == {"phase": "fetch", "workflow": "etl"}
    assert spans["fetch"]["parent_id"] == spans["etl"]["span_id"] == fetch._span.parent_id
    assert spans["fetch"]["execution_id"] == "run-9"
    for event in events:
        validate(event, now_ms=NOW_MS)


def test_a_step_with_a_wrong_dependency_list_is_dropped_and_counted_not_raised():
    vigil = offline()
    assert vigil.step_started("etl", "r", "load", after=["a"] * 33) is False
    assert vigil.step_completed("etl", "r", "load", duration_ms=1.0, after=[""]) is False
    assert wire(vigil) == [] and vigil.stats()["invalid"] == 2


def test_a_failing_step_fails_the_run_reports_the_error_once_and_reraises():
    vigil = offline()
    boom = RuntimeError("disk full")
    with pytest.raises(RuntimeError) as caught, vigil.execution("etl", "run-2") as run:
        with run.step("extract"):
            pass
        with run.step("load"):
            raise boom
    assert caught.value is boom
    events = wire(vigil)
    step_end = [e for e in events if e["kind"] == "step.end"][-1]
    assert step_end["ok"] is False and step_end["status"] == "failed"
    assert step_end["message"] == "disk full"
    errors = [e for e in events if e["kind"] == "error"]
    assert len(errors) == 1 and errors[0]["execution_id"] == "run-2"
    assert errors[0]["attrs"]["context"] == {"workflow": "etl", "step": "load"}
    end = next(e for e in events if e["kind"] == "execution.end")
    assert end["ok"] is False and end["status"] == "failed"
    assert end["attrs"]["steps_done"] == 1


def test_a_cancelled_run_and_a_run_marked_failed_say_so():
    vigil = offline()

    async def cancelled() -> None:
        async with vigil.execution("sync", "run-3"):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled())
    with vigil.execution("sync", "run-4") as run:
        run.fail("timeout")
    ends = [e for e in wire(vigil) if e["kind"] == "execution.end"]
    assert [(e["ok"], e["status"]) for e in ends] == [(False, "cancelled"), (False, "timeout")]


def test_explicit_hooks_give_the_same_event_shapes_as_the_simulated_engines():
    vigil = offline()
    vigil.execution_started("etl", "r9", total_steps=2, trace_id="t9")
    step = {"action": "io", "phase": "read"}  # the first step: it waited on none
    vigil.step_started("etl", "r9", "load", index=0, total_steps=2, **step)
    vigil.step_completed("etl", "r9", "load", duration_ms=80.0, ok=False, error="timeout", **step)
    vigil.recovery_attempted(
        "etl", "r9", strategy="retry", ok=True, step="load", attempt=1, duration_ms=100.0,
        action="io",
    )  # fmt: skip
    vigil.execution_completed(
        "etl", "r9", ok=True, duration_ms=400.0, steps_done=2, total_steps=2, recoveries=1,
        resources=Measure().stop(),
    )  # fmt: skip
    ours = {e["kind"]: e for e in wire(vigil)}
    theirs = {}
    for e in Simulation(seed=3, start_ms=NOW_MS).advance(600_000):
        theirs.setdefault(e["kind"], e)
    for kind in ("execution.start", "step.start", "step.end", "recovery", "execution.end"):
        assert set(theirs[kind]) <= set(ours[kind]), kind
        assert set(theirs[kind].get("attrs", {})) == set(ours[kind].get("attrs", {})), kind


def test_a_step_error_whose_str_fails_still_ends_the_step():
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    vigil = offline()
    vigil.step_completed("etl", "r1", "load", duration_ms=5.0, ok=False, error=Weird())
    step_end = next(e for e in wire(vigil) if e["kind"] == "step.end")
    assert step_end["message"] == "<Weird>" and vigil.stats()["internal_errors"] == 0


def test_a_timed_recovery_reports_its_duration_and_outcome():
    vigil = offline()
    with vigil.execution("etl", "run-2", total_steps=1) as run, run.step("load"):
        with run.recovery("retry", step="load", attempt=1):
            time.sleep(0.02)
        with pytest.raises(OSError), run.recovery("fallback", step="load"):
            raise OSError("no fallback either")
        with run.recovery("rollback", step="load") as undo:
            undo.ok = False
    recoveries = [e for e in wire(vigil) if e["kind"] == "recovery"]
    assert [(e["status"], e["ok"]) for e in recoveries] == [
        ("retry", True),
        ("fallback", False),
        ("rollback", False),
    ]
    assert recoveries[0]["value"] >= 20 and recoveries[0]["attrs"]["attempt"] == 1
    assert all(isinstance(e["value"], float) for e in recoveries)
    assert run.recoveries == 3
    for event in recoveries:
        validate(event, now_ms=NOW_MS)


def test_a_span_carries_its_kind_status_and_events():
    vigil = offline()
    with vigil.span("checkout", kind="server") as root:
        root.add_event("cart loaded", {"items": 3})
        with vigil.span("charge", kind="client") as call:
            call.set_status("error", "card declined")
        with vigil.span("odd", kind="sideways"):
            pass
    charge, odd, checkout = wire(vigil)
    assert (charge["ok"], charge["status"], charge["message"]) == (False, "error", "card declined")
    assert charge["attrs"] == {"span_kind": "client"}
    assert "attrs" not in odd  # an unknown kind is internal, the default, not written
    assert checkout["attrs"] == {
        "span_kind": "server",
        "events": [{"name": "cart loaded", "ts": NOW_MS, "items": 3}],
    }
    assert (checkout["ok"], checkout["status"]) == (True, "ok")
    for event in (charge, odd, checkout):
        validate(event, now_ms=NOW_MS)


def test_a_trace_crosses_services_with_w3c_traceparent():
    from producers import inject

    front, back = offline(service="front"), offline(service="back")
    with front.span("call back", kind="client") as call:
        headers = inject({"accept": "json"})
    assert headers["traceparent"] == f"00-{call.trace_id}-{call.span_id}-01"
    with (
        back.span("handle", kind="server", traceparent=headers["traceparent"]) as handle,
        back.span("db"),
    ):
        pass
    (sent,) = wire(front)
    db, handled = wire(back)
    assert handled["trace_id"] == db["trace_id"] == sent["trace_id"]
    assert handled["parent_id"] == sent["span_id"] and db["parent_id"] == handled["span_id"]
    assert handle.traceparent is not None
    # Not sampled upstream: not here either. An unreadable header: a trace of its own.
    unsampled = f"00-{call.trace_id}-{call.span_id}-00"
    with back.span("quiet", traceparent=unsampled):
        pass
    with back.span("fresh", traceparent="00-nonsense") as fresh:
        pass
    (alone,) = wire(back)
    assert alone["name"] == "fresh" and "parent_id" not in alone
    assert fresh.trace_id != call.trace_id
    assert inject({}) == {}  # no current span: nothing to carry


def test_a_measure_whose_descriptor_was_reused_for_another_file_reads_its_own_process():
    """Other code may close a descriptor it does not own, and the number goes to the next
    file opened: another process's status would read as plausible figures."""
    from producers import measure

    parent_rss = psutil.Process(os.getppid()).memory_info().rss
    if abs(parent_rss - psutil.Process().memory_info().rss) < 32 << 20:
        pytest.skip("the parent's memory is too close to this process's to tell them apart")
    Measure().stop()  # the status file is open now
    fd = measure._proc.status
    parent = os.open(f"/proc/{os.getppid()}/status", os.O_RDONLY)
    os.dup2(parent, fd)  # as if ours were closed and the number reused
    os.close(parent)
    try:
        rss, _ = measure._proc.memory()
        own = psutil.Process().memory_info().rss
        assert abs(rss - own) < 16 << 20
        assert os.readlink(f"/proc/self/fd/{measure._proc.status}").endswith(
            f"/{os.getpid()}/status"
        )
    finally:
        os.close(fd)  # the reused number is the test's to close

"""The live read API's answers and errors, on a real processor (no web server)."""

from __future__ import annotations

import orjson
import pytest

from streams import api
from streams.processing import Processor
from streams.windows import parse_windows

NOW = 1_800_000_000_000


def _processor(*events):
    p = Processor(windows=parse_windows("1m,5m"), grace_ms=0, source="c/t")
    p.load(0, None, -1)
    p.process([(0, 0, b"\n".join(orjson.dumps(e) for e in events))], now_ms=NOW)
    return p


def _wf(kind, ts, **fields):
    return {
        "kind": kind,
        "ts": ts,
        "service": "pipeline",
        "name": "etl",
        "execution_id": "r1",
        **fields,
    }


def test_series_windows_give_the_open_windows_with_their_figures():
    p = _processor(
        *(
            {"kind": "metric", "ts": NOW + i, "service": "api", "name": "lat", "value": float(i)}
            for i in range(10)
        )
    )
    body = api.series_windows(p, "metric|api|lat")
    assert body["partition"] == 0 and body["late"] == 0
    assert [(w["window"], w["count"], w["max"]) for w in body["windows"]] == [("1m", 10, 9.0)]


def test_executions_and_workflows_are_answered_from_the_partition_state():
    p = _processor(
        _wf("execution.start", NOW, attrs={"total_steps": 2}),
        _wf("step.start", NOW, step="a", attrs={"index": 0}),
        _wf("step.end", NOW + 10, step="a", value=10.0, ok=True),
    )
    run = api.execution(p, "r1", now_ms=NOW + 20)
    assert (run["status"], run["progress_pct"], run["elapsed_ms"]) == ("running", 50.0, 20)
    assert api.workflow(p, "etl")["running"] == 1


@pytest.mark.parametrize(
    ("call", "status", "reason"),
    [
        (lambda p: api.series_windows(p, None), 400, "required"),
        (lambda p: api.series_windows(p, "x" * 2000), 400, "longer"),
        (lambda p: api.series_windows(p, "metric|api|nope"), 404, "no open window"),
        (lambda p: api.execution(p, "nope", now_ms=NOW), 404, "not known"),
        (lambda p: api.workflow(p, " "), 400, "required"),
        (lambda p: api.workflow(None, "etl"), 404, "not known"),
    ],
)
def test_bad_parameters_give_400_and_unknown_things_404_with_a_reason(call, status, reason):
    with pytest.raises(api.ApiError) as err:
        call(_processor())
    assert err.value.status == status and reason in err.value.reason


def test_the_overview_lists_running_executions_workflows_and_alerts_by_urgency():
    from streams.rules import parse
    from tests.samples import threshold_rule

    rules = parse(
        threshold_rule("deep", metric="depth", threshold=10, severity="warning")
        + threshold_rule("deeper", metric="depth", threshold=50, severity="critical"),
        "r.toml",
        windows=("1m",),
    )
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c/t", rules=rules)
    p.load(0, None, -1)
    events = [
        _wf("execution.start", NOW, execution_id="old", attrs={"total_steps": 1}),
        _wf("step.start", NOW, execution_id="old", step="a"),
        _wf("step.end", NOW + 500, execution_id="old", step="a", value=500.0),
        _wf("execution.end", NOW + 600, execution_id="old", value=600.0, ok=True),
        _wf("execution.start", NOW + 1_000, execution_id="r1", attrs={"total_steps": 2}),
        _wf("execution.start", NOW + 2_000, execution_id="r2", attrs={"total_steps": 2}),
        _wf("step.start", NOW + 2_000, execution_id="r2", step="a"),
        {"kind": "metric", "ts": NOW, "service": "q", "name": "depth", "value": 99.0},
        {"kind": "metric", "ts": NOW + 61_000, "service": "q", "name": "depth", "value": 1.0},
    ]
    p.process([(0, 0, b"\n".join(orjson.dumps(e) for e in events))], now_ms=NOW + 70_000)
    counts = {"valid": len(events), "rejected": 2}
    out = _overview(p, counts, events_per_s=12.34, now_ms=NOW + 90_000)
    assert (out["events"], out["dead_letters"], out["events_per_s"]) == (9, 2, 12.3)
    assert [r["execution_id"] for r in out["running"]] == ["r2", "r1"]  # latest activity first
    assert out["running"][0]["current_step"] == "a" and out["running_total"] == 2
    (etl,) = out["workflows"]
    assert (etl["workflow"], etl["runs"], etl["running"], etl["success_rate"]) == ("etl", 1, 2, 1.0)
    assert [a["rule"] for a in out["alerts"]] == ["deeper", "deep"]  # critical first
    assert all(a["status"] == "firing" and a["age_s"] == 30.0 for a in out["alerts"])
    assert out["firing"] == 2
    muted = _overview(p, counts, events_per_s=0, now_ms=NOW, silenced=lambda labels, at: True)
    assert all(a["silenced"] for a in muted["alerts"])


def _overview(p, counts, *, now_ms, **options):
    """The overview of one worker's partitions, as a lone worker's page makes it."""
    parts = api.merge([api.held(p, now_ms=now_ms)])
    return api.overview(parts, counts, now_ms=now_ms, windows=["1m"], **options)

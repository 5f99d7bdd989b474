"""Every history query against a direct recount of the generated events (tests.history_data),
on chDB written through the real processor and writer."""

from __future__ import annotations

import collections
import math
import re
import statistics
from datetime import UTC, datetime

import pytest

from sinks import catalog
from sinks.queries import HistoryError, Limits, QueryTimeout, ReadOnly, TooManyRows
from sinks.significance import welch
from tests.history_data import (
    HOSTILE_METRIC,
    HOSTILE_TAG,
    HOSTILE_WORKFLOW,
    HOUR,
    LATENCY,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(history_store):
    return history_store[0]


@pytest.fixture(scope="module")
def data(history_store):
    return history_store[1]


def ask(store, data, name, **params):
    now = datetime.fromtimestamp(data.now_ms / 1000, UTC)
    return catalog.run(store, name, {k: str(v) for k, v in params.items()}, now=now)


def quantile(values, q):
    """Linear interpolation between closest ranks (ClickHouse quantileExactInclusive)."""
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@pytest.mark.parametrize("agg", ["count", "avg", "p95", "max"])
def test_a_series_per_step_equals_a_recount_of_its_raw_values(store, data, agg):
    out = ask(store, data, "series", series=LATENCY, since="6h", step="1h", agg=agg)
    start = data.now_ms - 6 * HOUR
    buckets = collections.defaultdict(list)
    for e in data.of("metric", series=LATENCY):
        if start <= e["ts"] < data.now_ms:
            buckets[e["ts"] // HOUR * HOUR].append(e["value"])
    recount = {"count": len, "avg": statistics.fmean, "max": max}.get(
        agg, lambda v: quantile(v, 0.95)
    )
    expected = [(iso(t), len(v), recount(v)) for t, v in sorted(buckets.items())]
    got = [(p["t"], p["count"], p["value"]) for p in out["points"]]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert [g[2] for g in got] == pytest.approx([e[2] for e in expected], rel=1e-9)


def test_a_key_without_tags_takes_every_series_of_that_name(store, data):
    out = ask(
        store, data, "series", series="metric|api|latency_ms", since="12h", step="12h", agg="count"
    )
    assert sum(p["value"] for p in out["points"]) == len(data.of("metric", name="latency_ms"))
    assert len({e["series"] for e in data.of("metric", name="latency_ms")}) == 2


def test_workflow_statistics_and_their_trend_equal_a_recount(store, data):
    out = {w["workflow"]: w for w in ask(store, data, "workflows", hours=6)}
    assert set(out) == {"etl", HOSTILE_WORKFLOW}
    mid = data.now_ms - 6 * HOUR
    for workflow, row in out.items():
        ends = data.of("execution.end", name=workflow)
        now = [e for e in ends if e["ts"] >= mid]
        before = [e for e in ends if data.now_ms - 12 * HOUR <= e["ts"] < mid]
        durations = [e["value"] for e in now]
        assert row["runs"] == len(now)
        assert row["success_rate"] == pytest.approx(sum(e["ok"] for e in now) / len(now))
        assert row["mean_ms"] == pytest.approx(statistics.fmean(durations))
        assert row["p50_ms"] == pytest.approx(quantile(durations, 0.5))
        assert row["p95_ms"] == pytest.approx(quantile(durations, 0.95))
        assert row["recoveries"] == sum(e["attrs"]["recoveries"] for e in now)
        if before:
            assert row["previous"]["runs"] == len(before)
            assert row["trend"]["runs_pct"] == pytest.approx((len(now) / len(before) - 1) * 100)
            previous_p95 = quantile([e["value"] for e in before], 0.95)
            assert row["trend"]["p95_ms_pct"] == pytest.approx(
                (row["p95_ms"] / previous_p95 - 1) * 100
            )
        else:
            assert row["previous"]["runs"] is None and row["trend"]["runs_pct"] is None


def test_slowest_and_most_failing_steps_equal_a_recount(store, data):
    out = ask(store, data, "steps", since="12h", limit=10)
    groups = collections.defaultdict(list)
    for e in data.of("step.end"):
        if e["ts"] >= data.now_ms - 12 * HOUR:
            groups[(e["name"], e["step"])].append(e)
    p95 = {k: quantile([e["value"] for e in v], 0.95) for k, v in groups.items()}
    slowest = sorted(p95, key=lambda k: -p95[k])
    assert [(r["workflow"], r["step"]) for r in out["slowest"]] == slowest
    assert [r["p95_ms"] for r in out["slowest"]] == pytest.approx([p95[k] for k in slowest])
    failures = {k: sum(not e["ok"] for e in v) for k, v in groups.items()}
    assert {(r["workflow"], r["step"]): r["failures"] for r in out["failing"]} == {
        k: n for k, n in failures.items() if n
    }
    assert [r["failures"] for r in out["failing"]] == sorted(
        (n for n in failures.values() if n), reverse=True
    )


def test_error_types_and_recovery_success_equal_a_recount(store, data):
    out = ask(store, data, "errors", since="12h")
    counts = collections.Counter(e["name"] for e in data.of("error"))
    assert {r["type"]: r["count"] for r in out["types"]} == counts
    assert [r["count"] for r in out["types"]] == sorted(counts.values(), reverse=True)
    recoveries = data.of("recovery")
    by_strategy = collections.Counter((e["name"], e["status"]) for e in recoveries)
    assert {(r["workflow"], r["strategy"]): r["attempts"] for r in out["recoveries"]} == by_strategy
    assert out["recovery_attempts"] == len(recoveries)
    # Timed attempts (the SDK's run.recovery(), the engine's backoff) give their durations.
    for r in out["recoveries"]:
        key = (r["workflow"], r["strategy"])
        mine = [e["value"] for e in recoveries if (e["name"], e["status"]) == key and "value" in e]
        assert r["timed"] == len(mine)
        assert r["mean_ms"] == (pytest.approx(statistics.mean(mine)) if mine else None)
    assert any(r["timed"] for r in out["recoveries"]), "timed attempts to check"
    assert out["recovery_success_rate"] == pytest.approx(
        sum(e["ok"] for e in recoveries) / len(recoveries)
    )


def test_alert_history_holds_every_transition_the_rules_made(store, data):
    assert data.alerts, "the generated latency shift must make the rule fire"
    out = ask(store, data, "alerts", since="12h", limit=1000)
    expected = sorted((iso(a.at), a.rule, a.state, a.previous) for a in data.alerts)
    assert sorted((r["at"], r["rule"], r["state"], r["previous"]) for r in out) == expected
    assert [r["at"] for r in out] == sorted((r["at"] for r in out), reverse=True)
    firing = ask(store, data, "alerts", since="12h", state="firing", rule="slow_api")
    assert len(firing) == sum(a.state == "firing" and a.rule == "slow_api" for a in data.alerts)
    assert {a.rule for a in data.alerts} >= {"slow_api", "failed_runs"}


def test_alert_statistics_equal_a_recount_of_the_transitions_the_rules_made(store, data):
    out = ask(store, data, "alert_stats", since="12h", limit=1000)
    expected = {}
    for key in {(a.rule, a.severity) for a in data.alerts}:
        mine = [a for a in data.alerts if (a.rule, a.severity) == key]
        took = sorted((a.at - a.started_at) / 1000 for a in mine if a.state == "resolved")
        expected[key] = {
            "pending": sum(a.state == "pending" for a in mine),
            "fired": sum(a.state == "firing" for a in mine),
            "resolved": len(took),
            "series": len({a.series for a in mine}),
            "mean_resolve_s": statistics.mean(took) if took else None,
            "p95_resolve_s": quantile(took, 0.95) if took else None,
        }
    got = {(r["rule"], r["severity"]): {k: r[k] for k in expected[next(iter(expected))]}
           for r in out["rules"]}  # fmt: skip
    assert got.keys() == expected.keys() and expected
    for key, want in expected.items():
        for field, value in want.items():
            assert got[key][field] == (pytest.approx(value) if value else value), (key, field)
    assert out["by_state"]["firing"] == sum(a.state == "firing" for a in data.alerts)
    assert sum(out["fired_by_severity"].values()) == out["by_state"]["firing"]
    assert any(w["resolved"] for w in expected.values()), "an episode resolved: times to check"


def test_operations_summarise_every_span_name_of_every_service(store, data):
    out = ask(store, data, "operations", since="12h", limit=1000)
    spans = data.of("span")
    names = {(e["service"], e["name"]) for e in spans}
    assert {(r["service"], r["operation"]) for r in out} == names
    for r in out:
        mine = [e for e in spans if (e["service"], e["name"]) == (r["service"], r["operation"])]
        durations = [e["value"] for e in mine]
        assert (r["spans"], r["traces"]) == (len(mine), len({e["trace_id"] for e in mine}))
        assert r["errors"] == sum(not e["ok"] for e in mine)
        assert r["p95_ms"] == pytest.approx(quantile(durations, 0.95))
        assert r["max_ms"] == max(durations)


def test_metrics_per_source_give_every_series_and_its_latest_value(store, data):
    out = ask(store, data, "metrics", since="13h", limit=10_000)
    samples = [e for e in data.events if e["kind"] == "metric"]
    by_series = collections.defaultdict(list)
    for e in samples:
        by_series[e["series"]].append(e)
    assert {r["series"] for r in out} == set(by_series)
    for r in out:
        mine = sorted(by_series[r["series"]], key=lambda e: e["ts"])
        assert (r["service"], r["metric"]) == (mine[-1]["service"], mine[-1]["name"])
        assert r["samples"] == len(mine) and r["last_at"] == iso(mine[-1]["ts"])
        assert r["current"] == pytest.approx(mine[-1]["value"])
        assert r["mean"] == pytest.approx(statistics.mean(e["value"] for e in mine))


def test_log_patterns_group_every_line_of_a_template_and_flag_what_is_new(store, data):
    out = ask(store, data, "log_patterns", since="13h", level="info+", limit=100)
    lines = [e for e in data.events if e["kind"] in ("log", "error") and e.get("level") != "debug"]
    assert out["lines"] == len(lines) and sum(p["count"] for p in out["patterns"]) == len(lines)
    # The generated lines: four phrasings numbered "[i]", and error types numbered "#i".
    # (Numbers are masked: "100%" is "<NUM>%".)
    stems = {"plain line": "plain line", "100% done_now": "<NUM>% done_now",
             "SELECT * FROM users; --": "SELECT * FROM", "Path C": "Path C"}  # fmt: skip
    for stem, template in stems.items():
        n = sum(e["message"].startswith(stem) for e in lines)
        (found,) = [p for p in out["patterns"] if p["template"].startswith(template)]
        assert found["count"] == n > 0, (stem, found)
        assert "<NUM>" in found["template"] and found["new"] is True  # nothing before
    timeouts = [p for p in out["patterns"] if p["template"].startswith("TimeoutError")]
    assert [p["count"] for p in timeouts] == [7]
    levels = sum((collections.Counter(p["levels"]) for p in out["patterns"]), collections.Counter())
    assert levels == collections.Counter(e.get("level") or "error" for e in lines)
    # The last 4 hours against the 4 before: new is what the 4 before did not have (lines
    # compared with their numbers blotted out, independently of the miner).
    later = ask(store, data, "log_patterns", since="4h", level="info+", limit=100)
    cut = data.now_ms - 4 * HOUR

    def shape(message):
        return re.sub(r"\d+", "#", message)

    before = {shape(e["message"]) for e in lines if cut - 4 * HOUR <= e["ts"] < cut}
    assert later["patterns"] and later["new"] < later["templates"]
    assert {p["example"]: p["new"] for p in later["patterns"]} == {
        p["example"]: shape(p["example"]) not in before for p in later["patterns"]
    }


def test_resources_give_median_and_spread_beside_mean_and_p95(store, data):
    rows = ask(store, data, "resources", since="13h", service="worker")
    assert [r["resource"] for r in rows] == ["container_memory_mb", "cpu_percent"]
    memory, cpu = rows
    assert (memory["samples"], memory["max"], memory["median"]) == (48, 447.0, 423.5)
    values = [e["value"] for e in data.events if e["name"] == "cpu_percent"]
    assert (cpu["resource"], cpu["samples"]) == ("cpu_percent", len(values)) and values
    assert cpu["mean"] == pytest.approx(statistics.mean(values))
    assert cpu["median"] == pytest.approx(statistics.median(values))
    assert cpu["stddev"] == pytest.approx(statistics.pstdev(values))
    assert cpu["p95"] == pytest.approx(quantile(values, 0.95))


def test_daily_rollups_equal_the_same_aggregates_computed_from_raw_rows(store, data):
    """The materialized views' states, merged, against one GROUP BY over the raw rows."""
    raw = store.client.query(
        "SELECT toDate(ts) AS day, series, count(), countIf(ok = false), count(value), "
        "min(value), max(value), avg(value), stddevPop(value), "
        "quantilesTDigest(0.5, 0.95, 0.99)(value) FROM vigil.events GROUP BY day, series"
    ).result_rows
    rollups = ask(store, data, "daily", days=2, limit=10_000)
    got = {(r["day"], r["series"]): r for r in rollups}
    assert len(got) == len(raw) and len(raw) > 20
    for day, series, count, errors, values, lo, hi, avg, stddev, qs in raw:
        row = got[(day.isoformat(), series)]
        assert (row["count"], row["errors"], row["values"]) == (count, errors, values)
        for key, value in zip(
            ("min", "max", "avg", "stddev", "p50", "p95", "p99"),
            (lo, hi, avg, stddev, *qs),
            strict=True,
        ):
            if values:
                assert row[key] == pytest.approx(value, rel=1e-9), (series, key)
            else:
                assert row[key] is None or math.isnan(value), (series, key)
    assert sum(r["count"] for r in rollups) == len(data.events)


def test_daily_workflow_rollups_equal_a_recount(store, data):
    rows = ask(store, data, "daily", days=2, by="workflow")
    got = collections.defaultdict(collections.Counter)
    for r in rows:
        got[r["workflow"]].update(
            runs=r["runs"], failures=r["failures"], steps=r["steps"], recovered=r["recovered"]
        )
    for workflow in ("etl", HOSTILE_WORKFLOW):
        ends = data.of("execution.end", name=workflow)
        assert got[workflow] == {
            "runs": len(ends),
            "failures": sum(not e["ok"] for e in ends),
            "steps": len(data.of("step.end", name=workflow)),
            "recovered": sum(e["ok"] for e in data.of("recovery", name=workflow)),
        }


@pytest.mark.parametrize(
    "text", ["100%", "done_now", "it's; DROP TABLE", "select * from users", "C:\\tmp", "%", "_"]
)
def test_log_search_finds_text_literally_and_case_insensitively(store, data, text):
    out = ask(store, data, "logs", text=text, since="12h", limit=1000)
    lines = [e for e in data.events if e["kind"] in ("log", "error")]
    expected = sorted(e["message"] for e in lines if text.lower() in e["message"].lower())
    assert sorted(r["message"] for r in out) == expected and expected


def test_log_search_by_level_and_above_and_service(store, data):
    out = ask(store, data, "logs", level="warning+", service="api", since="12h", limit=1000)
    levels = {"warning", "error", "critical"}
    expected = [
        e
        for e in data.events
        if e["kind"] in ("log", "error")
        and (e.get("level") in levels or e["kind"] == "error")
        and e["service"] == "api"
    ]
    assert len(out) == len(expected) and {r["level"] for r in out} <= levels
    assert [r["ts"] for r in out] == sorted((r["ts"] for r in out), reverse=True)
    assert ask(store, data, "logs", service="nobody", since="12h") == []


def test_the_trace_of_a_log_line_is_rebuilt_as_a_span_tree(store, data):
    (line,) = ask(store, data, "logs", text="query failed", since="12h")
    out = ask(store, data, "trace", trace_id=line["trace_id"])
    (root,) = out["roots"]
    tree = {
        root["name"]: sorted(
            (c["name"], [g["name"] for g in c["children"]]) for c in root["children"]
        )
    }
    assert tree == {"root": [("cache", []), ("db", ["query"])]}
    query = root["children"][0]["children"][0]
    assert query["ok"] is False and [x["message"] for x in query["logs"]] == ["query failed"]
    assert [x["message"] for x in out["logs"]] == ["after the trace"]  # its span is not stored
    assert (out["spans"], out["errors"], out["duration_ms"]) == (4, 1, 500.0)


@pytest.mark.parametrize("length", [2, 3, 10])
def test_feature_usage_by_feature_user_and_common_sequences_equal_a_recount(store, data, length):
    out = ask(store, data, "usage", since="12h", length=length)
    calls = data.of("metric", name="feature_used")
    by_feature = collections.defaultdict(list)
    for e in calls:
        by_feature[e["tags"]["feature"]].append(e)
    assert {
        f["feature"]: (f["calls"], f["failures"], f["users"], f["sessions"])
        for f in out["features"]
    } == {
        f: (
            len(v),
            sum(not e["ok"] for e in v),
            len({e["attrs"]["user"] for e in v}),
            len({e["attrs"]["session"] for e in v}),
        )
        for f, v in by_feature.items()
    }
    by_user = collections.defaultdict(list)
    for e in calls:
        by_user[e["attrs"]["user"]].append(e)

    def top3(v):
        counts = collections.Counter(e["tags"]["feature"] for e in v)
        return sorted(counts, key=lambda f: (-counts[f], f))[:3]

    assert {
        u["user"]: (u["calls"], u["features"], u["sessions"], u["top_features"])
        for u in out["users"]
    } == {
        user: (
            len(v),
            len({e["tags"]["feature"] for e in v}),
            len({e["attrs"]["session"] for e in v}),
            top3(v),
        )
        for user, v in by_user.items()
    }
    sessions = collections.defaultdict(list)
    for e in sorted(calls, key=lambda e: e["ts"]):
        sessions[e["attrs"]["session"]].append(e["tags"]["feature"])
    runs = collections.Counter(
        tuple(s[i : i + length]) for s in sessions.values() for i in range(len(s) - length + 1)
    )
    assert runs  # sessions long enough for runs of this length
    assert {tuple(r["sequence"]): r["occurrences"] for r in out["sequences"]} == runs
    assert out["sequences"][0]["occurrences"] == max(runs.values())


@pytest.mark.parametrize("how", ["marker", "at"])
def test_before_and_after_a_deploy_equals_a_recount_and_is_significant(store, data, how):
    at = {"marker": "deploy"} if how == "marker" else {"at": str(data.deploy_ms)}
    out = ask(store, data, "compare", series=LATENCY, window="3h", **at)
    values = [(e["ts"], e["value"]) for e in data.of("metric", series=LATENCY)]
    window = 3 * HOUR
    before = [v for t, v in values if data.deploy_ms - window <= t < data.deploy_ms]
    after = [v for t, v in values if data.deploy_ms <= t < data.deploy_ms + window]
    assert out["at"] == iso(data.deploy_ms)
    assert (out["before"]["n"], out["after"]["n"]) == (len(before), len(after))
    assert out["before"]["mean"] == pytest.approx(statistics.fmean(before))
    assert out["after"]["p95"] == pytest.approx(quantile(after, 0.95))
    test = welch(
        n1=len(before),
        mean1=statistics.fmean(before),
        var1=statistics.variance(before),
        n2=len(after),
        mean2=statistics.fmean(after),
        var2=statistics.variance(after),
    )
    assert out["p_value"] == pytest.approx(test.p_value, rel=1e-6, abs=1e-300)
    assert out["significant"] is True and out["change_pct"] > 20


def test_no_change_is_not_significant(store, data):
    at = str(data.deploy_ms - 90 * 60_000)  # inside the steady period before the deploy
    out = ask(store, data, "compare", series=LATENCY, at=at, window="80m")
    assert out["significant"] is False and out["p_value"] > 0.05


def test_quotes_semicolons_and_sql_keywords_are_found_literally_and_break_nothing(store, data):
    before = store.client.query("SELECT count() FROM vigil.events").result_rows[0][0]
    key = f"metric|api|{HOSTILE_METRIC}|q={HOSTILE_TAG}"
    out = ask(store, data, "series", series=key, since="12h", step="1h", agg="count")
    assert sum(p["value"] for p in out["points"]) == 50
    (wf,) = ask(store, data, "workflows", hours=6, workflow=HOSTILE_WORKFLOW)
    assert wf["workflow"] == HOSTILE_WORKFLOW
    errors = ask(store, data, "errors", since="12h")["types"]
    assert "Drop'Table;Error" in {e["type"] for e in errors}
    for hostile in ("' OR 1=1 --", "x'); DROP TABLE vigil.events; --", "\\' UNION SELECT 1"):
        assert ask(store, data, "logs", text=hostile, since="12h") == []
        assert ask(store, data, "alerts", since="12h", rule=hostile) == []
        assert ask(store, data, "daily", days=2, series=hostile) == []
        assert ask(store, data, "trace", trace_id=hostile)["spans"] == 0
    assert store.client.query("SELECT count() FROM vigil.events").result_rows[0][0] == before


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("series", {"series": LATENCY, "agg": "avg(value)); DROP TABLE x; --"}, "is not one of"),
        ("series", {"series": "no-pipes"}, "is not a series key"),
        ("series", {"series": LATENCY, "since": "30d", "step": "1s"}, "at most 10000"),
        ("logs", {"level": "loud"}, "is not one of"),
        ("logs", {"since": "yesterday-ish"}, "is not a time"),
        ("logs", {"since": "1h", "until": "2h"}, "the range is empty"),
        ("alerts", {"limit": "0"}, "limit must be between"),
        ("alerts", {"state": "exploded"}, "is not pending"),
        ("trace", {}, "needs the parameter 'trace_id'"),
        ("compare", {"series": LATENCY}, "give one of at"),
        ("compare", {"series": LATENCY, "marker": "never"}, "no log line named"),
        ("usage", {"length": "40"}, "between 2 and 10"),
        ("logs", {"sql": "SELECT 1"}, "takes no parameter 'sql'"),
        ("nope", {}, "no history query 'nope'"),
    ],
)
def test_bad_parameters_get_a_clear_error(store, data, name, params, message):
    with pytest.raises(HistoryError, match=message) as caught:
        ask(store, data, name, **params)
    assert caught.value.status == 400


def test_a_query_past_its_time_limit_returns_a_clear_error(store):
    slow = ReadOnly(store.client, "vigil", Limits(timeout_s=0.5))
    with pytest.raises(QueryTimeout, match=r"ran past its time limit of 0\.5 s") as caught:
        slow.execute("slow", "SELECT count() FROM numbers(1e12) WHERE sipHash64(number) = 1", {})
    assert caught.value.status == 504


def test_a_query_past_its_row_limit_returns_a_clear_error(store):
    small = ReadOnly(store.client, "vigil", Limits(max_rows=1000))
    with pytest.raises(TooManyRows, match="more than 1000 rows"):
        small.execute("big", "SELECT number FROM numbers(100000)", {})


def test_the_read_only_store_refuses_writes_and_file_access_and_the_writer_still_writes(store):
    with pytest.raises(HistoryError, match="is not a SELECT"):
        store.execute("write", "INSERT INTO vigil.events (kind) VALUES ('x')", {})
    with pytest.raises(Exception, match="readonly"):
        store.execute("file", "SELECT * FROM file('/etc/passwd', 'LineAsString')", {})
    # readonly travelled with the query only: the same process still writes
    store.client.command("CREATE TABLE IF NOT EXISTS vigil.scratch (a UInt8) ENGINE = Memory")
    store.client.command("DROP TABLE vigil.scratch")


def test_times_are_checked_against_now(store, data):
    now = datetime.fromtimestamp(data.now_ms / 1000, UTC)
    out = catalog.run(store, "logs", {"since": "1h", "until": "now"}, now=now)
    lines = [e for e in data.events if e["kind"] in ("log", "error")]
    assert len(out) == sum(data.now_ms - HOUR <= e["ts"] < data.now_ms for e in lines) > 0


def _spans(alerts, series, start_ms, end_ms):
    """Recount of the spans a series' alerts were pending or firing within the range:
    (from, to, rule, state), ``to`` None while still so at the end."""
    by_rule = collections.defaultdict(list)
    for a in sorted((a for a in alerts if a.series == series), key=lambda a: a.at):
        by_rule[a.rule].append(a)
    spans = []
    for rule, transitions in by_rule.items():
        for a, b in zip(transitions, [*transitions[1:], None], strict=True):
            to = b.at if b is not None and b.at < end_ms else None
            if a.state in ("pending", "firing") and a.at < end_ms and (to is None or to > start_ms):
                spans.append((iso(max(a.at, start_ms)), to and iso(to), rule, a.state))
    return sorted(spans)


def test_a_chart_of_recent_windows_equals_the_windows_scores_and_alerts_the_worker_made(
    store, data
):
    """Three hours of 1m windows: the windows themselves; the range starts inside an alert
    episode of the series (its earlier transition is read too)."""
    firing = [a for a in data.alerts if a.series == LATENCY and a.state == "firing"]
    assert firing, "the generated latency shift must make an alert fire"
    end_ms = data.now_ms
    start_ms = firing[0].at + 30_000  # inside the first episode
    now = datetime.fromtimestamp(end_ms / 1000, UTC)
    out = catalog.run(
        store, "chart", {"series": LATENCY, "since": str(start_ms), "window": "1m"}, now=now
    )
    assert out["source"] == "windows" and out["step_s"] == 60
    windows = sorted(
        (w for w in data.windows if w.series == LATENCY and start_ms < w.end_ms <= end_ms),
        key=lambda w: w.end_ms,
    )
    assert len(windows) > 60
    got = [(p["t"], p["count"], p["errors"], p["mean"], p["p95"]) for p in out["points"]]
    assert got == [(iso(w.end_ms), w.count, w.errors, w.mean, w.p95) for w in windows]
    scores = sorted(
        (iso(s.end_ms), s.detector, s.score)
        for s in data.scores
        if s.series == LATENCY and start_ms < s.end_ms <= end_ms
    )
    assert len(scores) == len(windows)  # the detector scored every window of the series
    assert [(s["t"], s["detector"], s["score"]) for s in out["scores"]] == scores
    spans = sorted((s["from"], s["to"], s["rule"], s["state"]) for s in out["spans"])
    assert spans == _spans(data.alerts, LATENCY, start_ms, end_ms)
    assert spans[0][0] == iso(start_ms), "the episode under way at the start is drawn from it"


def test_a_chart_of_a_long_range_is_drawn_from_raw_events(store, data):
    out = ask(store, data, "chart", series=LATENCY, since="12h", window="1m")
    assert out["source"] == "events" and out["step_s"] == 300  # 144 buckets of 5 minutes
    step = 300_000
    start = data.now_ms - 12 * HOUR
    buckets = collections.defaultdict(list)
    for e in data.of("metric", series=LATENCY):
        if start <= e["ts"] < data.now_ms:
            buckets[e["ts"] // step * step + step].append(e["value"])
    got = [(p["t"], p["count"], p["max"]) for p in out["points"]]
    assert got == [(iso(t), len(v), max(v)) for t, v in sorted(buckets.items())]
    assert [p["p95"] for p in out["points"]] == pytest.approx(
        [quantile(v, 0.95) for _, v in sorted(buckets.items())], rel=1e-9
    )
    assert [p["mean"] for p in out["points"]] == pytest.approx(
        [statistics.fmean(v) for _, v in sorted(buckets.items())], rel=1e-9
    )
    best = collections.defaultdict(float)
    for s in data.scores:
        if s.series == LATENCY and start < s.end_ms <= data.now_ms:
            t = (s.end_ms - 1) // step * step + step
            best[t] = max(best[t], s.score)
    assert [(p["t"], p["score"]) for p in out["scores"]] == [
        (iso(t), v) for t, v in sorted(best.items())
    ]


def test_a_chart_of_a_key_without_its_tags_offers_the_series_of_that_name(store, data):
    out = ask(store, data, "chart", series="metric|api|latency_ms", since="12h", window="1m")
    assert out["points"] == [] and out["scores"] == []
    named = {w.series for w in data.windows if w.kind == "metric" and w.name == "latency_ms"}
    assert out["series_of_name"] == sorted(named) == [LATENCY, "metric|api|latency_ms|route=/b"]
    shown = ask(store, data, "chart", series=LATENCY, since="3h", window="1m")
    assert shown["points"] and shown["series_of_name"] == []

"""The pure parts of history queries: parameters, SQL files, statistics."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

import pytest

from sinks import migrations
from sinks.queries import (
    FRAGMENTS,
    HistoryError,
    clean,
    like_pattern,
    parse_duration,
    parse_series,
    parse_time,
    query_names,
    sql_text,
)
from sinks.significance import significance, student_two_sided, welch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("24h", 86400), ("7d", 604800)]
)
def test_durations_read_their_unit(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "-1h", "1y", "1h; DROP", "h"])
def test_bad_durations_say_what_a_duration_looks_like(text):
    with pytest.raises(HistoryError, match="is not a duration like"):
        parse_duration(text)


def test_times_are_now_a_duration_ago_epoch_ms_or_iso_in_utc():
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_time("1795000000000", now=NOW) == datetime.fromtimestamp(1_795_000_000, UTC)
    assert parse_time("2026-11-20T10:00", now=NOW) == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert parse_time("2026-11-20T10:00Z", now=NOW).tzinfo is not None
    with pytest.raises(HistoryError, match="is not a time"):
        parse_time("last tuesday", now=NOW)


def test_a_like_pattern_matches_its_text_literally():
    assert like_pattern("50%_OFF\\x") == "%50\\%\\_off\\\\x%"


def test_series_keys_give_the_primary_key_columns():
    key = parse_series("metric|api|latency_ms|route=/a")
    assert (key.kind, key.service, key.name) == ("metric", "api", "latency_ms")
    with pytest.raises(HistoryError, match="is not a series key"):
        parse_series("metric||x")


def test_clean_makes_times_iso_and_nan_none_recursively():
    at = datetime(2026, 1, 2, 3, 4, 5, 6000)
    assert clean({"a": [at, date(2026, 1, 2), math.nan, math.inf, 1.5]}) == {
        "a": ["2026-01-02T03:04:05.006Z", "2026-01-02", None, None, 1.5]
    }


def test_student_t_tail_matches_published_critical_values():
    # two-sided 5% critical values of Student's t
    for t, df in ((12.706, 1), (2.228, 10), (2.042, 30), (1.960, 1e7)):
        assert student_two_sided(t, df) == pytest.approx(0.05, abs=2e-4)
    assert student_two_sided(0.0, 5) == 1.0


def test_welch_needs_two_values_a_side_and_handles_constant_sides():
    with pytest.raises(ValueError, match="at least 2"):
        welch(n1=1, mean1=1, var1=0, n2=5, mean2=1, var2=1)
    assert welch(n1=3, mean1=5, var1=0, n2=3, mean2=5, var2=0).p_value == 1.0
    assert welch(n1=3, mean1=5, var1=0, n2=3, mean2=6, var2=0).p_value == 0.0


def test_significance_of_a_compare_row_with_one_side_empty_is_unknown():
    row = {
        "before_n": 0,
        "before_mean": math.nan,
        "before_var": math.nan,
        "after_n": 5,
        "after_mean": 3.0,
        "after_var": 1.0,
    }
    out = significance(row)
    assert out["change"] is None and out["p_value"] is None and out["significant"] is False


def test_every_query_file_is_a_select_on_the_configured_database_with_typed_parameters():
    names = query_names()
    assert {"series", "workflows", "logs", "trace_spans", "compare", "usage_sequences"} <= set(
        names
    )
    for name in names:
        sql = sql_text(name)
        body = migrations.strip_comments(sql)
        assert re.match(r"(?i)(SELECT|WITH)\b", body), name  # what ReadOnly lets through
        assert "{db}." in body and ";" not in body, name
        for param in re.findall(r"\{(\w+)(:[^}]*)?\}", body):
            assert param[0] in {"db", *FRAGMENTS} or param[1], f"{name}: {{{param[0]}}} has no type"


def test_migrations_split_into_statements_and_name_their_database():
    for migration in migrations.load():
        statements = migrations.render(migration, database="vigil_x", retention_days=30)
        assert statements, migration.name
        for statement in statements:
            code = migrations.strip_comments(statement)
            assert re.match(r"(CREATE|ALTER)\b", code), (migration.name, code[:40])
            assert "vigil_x." in code and not code.endswith(";")

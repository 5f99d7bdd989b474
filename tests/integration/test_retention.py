"""Rows older than ``VIGIL_RETENTION_DAYS`` leave every table that has a TTL; newer rows and
the daily rollups (kept for good) stay. A store made with one retention and opened with a
shorter one (the setting changed) keeps rows for the new one."""

from __future__ import annotations

import time

import pytest

from sinks import migrations
from sinks.settings import StoreSettings
from tests.conftest import _opened
from tests.history_data import generate, store_history

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


def test_rows_past_a_shortened_retention_leave_every_table_with_a_ttl_and_newer_rows_stay(
    tmp_path,
):
    now = int(time.time() * 1000)
    # Made under the default retention (90 days): rows of five days ago are kept.
    store_history(generate(now - 5 * DAY_MS), tmp_path, "old")
    store_history(generate(now, seed=12), tmp_path, "new")
    tables = migrations.expiring()
    cutoff = "now() - INTERVAL 2 DAY"

    def counts(ch) -> dict[str, tuple[int, int]]:
        return {
            table: ch.query(
                f"SELECT countIf({since} < {cutoff}), countIf({since} >= {cutoff}) "
                f"FROM vigil.{table}"
            ).result_rows[0]
            for table, since in tables.items()
        }

    rollups = "SELECT count() FROM vigil.series_daily"
    with _opened(StoreSettings(data_dir=tmp_path)) as ch:
        # Every table ClickHouse holds with a TTL is in the list, and only those.
        with_ttl = ch.query(
            "SELECT name FROM system.tables WHERE database = 'vigil' AND engine_full LIKE '% TTL %'"
        ).result_rows
        assert {name for (name,) in with_ttl} == set(tables)
        before, daily = counts(ch), ch.query(rollups).result_rows[0][0]
    # Then opened with VIGIL_RETENTION_DAYS=2.
    with _opened(StoreSettings(data_dir=tmp_path, retention_days=2)) as ch:
        for table in tables:
            ch.command(f"OPTIMIZE TABLE vigil.{table} FINAL")
        after, daily_after = counts(ch), ch.query(rollups).result_rows[0][0]
    filled = ("events", "executions", "spans", "logs", "anomaly_scores")
    assert all(before[t][0] > 0 and before[t][1] > 0 for t in filled), before
    for table in tables:
        (old, new), (old_after, new_after) = before[table], after[table]
        assert old_after == 0, f"{table}: {old_after} of {old} rows past the retention kept"
        assert new_after == new, f"{table}: {new} newer rows before, {new_after} after"
    assert daily_after == daily > 0, "the daily rollups have no TTL: they outlive raw rows"

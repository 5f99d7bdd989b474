"""``vigil export``: every table's rows of a period as Parquet and CSV, with a manifest.
The generated history is stored through the worker's processor and writer, exported by the
command, and the files are read back here with pyarrow and Python's csv module."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from sinks.export import time_columns
from tests.conftest import open_store
from tests.history_data import generate, store_history

pytestmark = pytest.mark.integration


def test_export_writes_every_table_of_the_period_in_both_formats(tmp_path):
    data_dir, out = tmp_path / "data", tmp_path / "export"
    history = generate(now_ms=int(time.time() // 60 * 60_000))
    store_history(history, data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "export", "--days", "2", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    with open_store(data_dir) as ch:
        stored = {
            name
            for (name,) in ch.query(
                "SELECT name FROM system.tables WHERE database = 'vigil'"
            ).result_rows
        }
        counts = {
            t: ch.query(f"SELECT count() FROM vigil.{t}").result_rows[0][0] for t in time_columns()
        }
    # Every table but the internal ones, each in both formats.
    assert set(manifest["tables"]) == stored - {"worker_state", "schema_migrations"} - {
        n for n in stored if n.endswith("_mv")
    }
    assert counts["events"] == len(history.events) and counts["alerts"] > 0
    for table, entry in manifest["tables"].items():
        parquet, text = out / entry["files"]["parquet"], out / entry["files"]["csv"]
        assert pq.read_table(parquet).num_rows == entry["rows"] == counts[table], table
        with open(text, newline="") as handle:
            assert sum(1 for _ in csv.reader(handle)) - 1 == entry["rows"], table
        for ext, path in (("parquet", parquet), ("csv", text)):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"][ext]

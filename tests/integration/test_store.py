import pytest

from sinks import migrations
from sinks.settings import StoreSettings
from sinks.store import open_client

pytestmark = pytest.mark.integration


def test_migrations_apply_once_and_a_second_run_changes_nothing(tmp_path):
    client = open_client(StoreSettings(data_dir=tmp_path), migrate=False)
    try:
        first = migrations.apply(client, database="vigil", retention_days=90)
        schema = client.query(
            "SELECT name, create_table_query FROM system.tables "
            "WHERE database = 'vigil' ORDER BY name"
        ).result_rows
        second = migrations.apply(client, database="vigil", retention_days=90)
        assert first == [m.version for m in migrations.load()] and second == []
        assert (
            client.query(
                "SELECT name, create_table_query FROM system.tables "
                "WHERE database = 'vigil' ORDER BY name"
            ).result_rows
            == schema
        )
        assert {"events", "windows", "schema_migrations"} <= {row[0] for row in schema}
    finally:
        client.close()


def test_a_database_name_that_is_not_an_identifier_is_refused(tmp_path):
    client = open_client(StoreSettings(data_dir=tmp_path), migrate=False)
    try:
        with pytest.raises(migrations.MigrationError, match="not a plain identifier"):
            migrations.apply(client, database="x; DROP TABLE y", retention_days=1)
    finally:
        client.close()


def test_a_second_process_on_the_same_chdb_path_gets_a_clear_error(tmp_path):
    import subprocess
    import sys

    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        code = (
            "from pathlib import Path\n"
            "from sinks.settings import StoreSettings\n"
            "from sinks.store import open_client, StoreError\n"
            f"try:\n    open_client(StoreSettings(data_dir=Path({str(tmp_path)!r})))\n"
            "except StoreError as e:\n    print('refused:', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert "refused:" in out.stdout and "one process" in out.stdout
    finally:
        client.close()

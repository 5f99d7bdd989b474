"""``vigil archive``: move old day partitions to Parquet files, and load them back.

Raw events and the tables kept from them (executions, spans, logs, feature calls), the
closed windows and their detector scores are partitioned by day. :func:`export` writes
each partition older than a date to ``DIR/TABLE/PARTITION.parquet``, checks the file
holds as many rows as the partition, records it in ``DIR/manifest.json`` and only then
drops the partition. Daily rollups and alert transitions stay: they are what history
keeps for good.

:func:`restore` loads files back partition by partition: each goes into an empty staging
copy of its table, then ``ALTER TABLE ... REPLACE PARTITION ... FROM`` moves it in whole.
Moving parts triggers no materialized view, so restored events are not counted again in
the rollups (which never lost them). Rows older than the retention (``VIGIL_RETENTION_DAYS``)
are deleted again by the TTL at the next merge: raise it before restoring those.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

#: Tables partitioned by day, in the order they are archived.
TABLES = ("events", "executions", "spans", "logs", "feature_calls", "windows", "anomaly_scores")
MANIFEST = "manifest.json"


class ArchiveError(RuntimeError):
    """An archive step failed; nothing was dropped for the partition it names."""


@dataclass(frozen=True)
class Archived:
    table: str
    partition: str  # the partition id: YYYYMMDD
    rows: int
    file: str  # relative to the archive directory
    sha256: str


def partitions(client: Any, database: str, table: str, before: date) -> list[tuple[str, int]]:
    """``(partition id, rows)`` of ``table``'s day partitions older than ``before``."""
    rows = client.query(
        "SELECT partition_id, sum(rows) FROM system.parts "
        "WHERE database = {db:String} AND table = {table:String} AND active "
        "GROUP BY partition_id ORDER BY partition_id",
        parameters={"db": database, "table": table},
    ).result_rows
    cutoff = before.strftime("%Y%m%d")
    return [(p, int(n)) for p, n in rows if re.fullmatch(r"\d{8}", p) and p < cutoff]


def export(
    client: Any,
    database: str,
    before: date,
    directory: Path,
    *,
    progress: Callable[[Archived], None] | None = None,
) -> list[Archived]:
    """Write every day partition older than ``before`` to Parquet, then drop it."""
    manifest = load(directory)
    done = []
    for table in TABLES:
        for partition, rows in partitions(client, database, table, before):
            path = directory / table / f"{partition}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            query = f"SELECT * FROM {database}.{table} WHERE _partition_id = {{p:String}}"
            with open(path, "wb") as out:
                for chunk in client.raw_stream(query, parameters={"p": partition}, fmt="Parquet"):
                    out.write(chunk)
            data = path.read_bytes()  # read once: counted by ClickHouse, then hashed
            with copy_of(client, database, table, "archive_check", null=True) as check:
                counted = int(client.raw_insert(check, None, data, fmt="Parquet").written_rows)
            if counted != rows:
                raise ArchiveError(
                    f"{path} holds {counted} rows, partition {table}/{partition} {rows}: "
                    "not dropped"
                )
            sha = hashlib.sha256(data).hexdigest()
            entry = Archived(table, partition, rows, str(path.relative_to(directory)), sha)
            manifest[f"{table}/{partition}"] = asdict(entry)
            save(directory, manifest)  # recorded before the drop
            client.command(f"ALTER TABLE {database}.{table} DROP PARTITION ID '{partition}'")
            done.append(entry)
            if progress:
                progress(entry)
    return done


def restore(
    client: Any,
    database: str,
    directory: Path,
    *,
    progress: Callable[[Archived], None] | None = None,
) -> list[Archived]:
    """Load every file of the manifest back; a partition still present is replaced."""
    restored = []
    for entry in (Archived(**e) for e in load(directory).values()):
        path = directory / entry.file
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ArchiveError(f"{path} does not match its checksum in {MANIFEST}")
        with copy_of(client, database, entry.table, f"restore_{entry.table}") as staging:
            client.raw_insert(staging, None, data, fmt="Parquet")
            client.command(
                f"ALTER TABLE {database}.{entry.table} "
                f"REPLACE PARTITION ID '{entry.partition}' FROM {staging}"
            )
        restored.append(entry)
        if progress:
            progress(entry)
    return restored


@contextlib.contextmanager
def copy_of(client: Any, database: str, table: str, name: str, *, null: bool = False) -> Any:
    """An empty copy of ``table`` named ``name`` (dropped after), e.g. a staging table,
    or with ``ENGINE = Null`` a place to count a file's rows (chDB or a server that
    cannot see this disk)."""
    copy = f"{database}.{name}"
    engine = " ENGINE = Null" if null else ""
    client.command(f"DROP TABLE IF EXISTS {copy}")
    client.command(f"CREATE TABLE {copy} AS {database}.{table}{engine}")
    try:
        yield copy
    finally:
        client.command(f"DROP TABLE IF EXISTS {copy}")


def under(data_dir: Path) -> Path:
    """The archive's directory when none is given: ``DATA_DIR/archive``."""
    return data_dir / "archive"


def load(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def save(directory: Path, manifest: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(directory / MANIFEST)

"""``vigil export --days N -o DIR``: every table's rows of the last N days as Parquet and
CSV files, with a manifest; nothing is dropped (``vigil archive`` moves partitions out).

Each table is cut on the time its partitions are cut on (``PARTITION BY toDate(ts)``:
``ts``), read from the migrations, so a table added later is exported with no change
here. The workers' checkpoints (``worker_state``) and the migrations' own table are
internal and left out. The rollups' aggregate states are written finalized (an average,
a standard deviation, the quantiles), since Parquet has no type for a state and a reader
has no use for one. Each file's rows are counted by ClickHouse reading the file back into a
``Null`` table of the export's own columns and compared with the rows the period holds;
the manifest records them with each file's SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sinks import migrations

MANIFEST = "manifest.json"
#: What each file format is called by ClickHouse, by file extension.
FORMATS = {"parquet": "Parquet", "csv": "CSVWithNames"}
_CREATE = re.compile(r"CREATE TABLE IF NOT EXISTS \w+\.(\w+)\b.*?PARTITION BY \w+\((\w+)\)", re.S)


class ExportError(RuntimeError):
    """A file does not hold what its table does; the message says which."""


@dataclass(frozen=True)
class Exported:
    table: str
    #: The column the period is cut on.
    column: str
    rows: int
    files: dict[str, str]  # extension -> path relative to the export directory
    sha256: dict[str, str]


def time_columns() -> dict[str, str]:
    """Table -> the time column its partitions are cut on, from the migrations."""
    out = {}
    for migration in migrations.load():
        for statement in migrations.render(migration, database="db", retention_days=1):
            match = _CREATE.match(statement)
            if match:
                out[match[1]] = match[2]
    return out


def _columns(client: Any, database: str, table: str) -> str:
    """The select list of ``table``: what ``SELECT *`` gives, aggregate states finalized."""
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String}"
        " AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') ORDER BY position",
        parameters={"d": database, "t": table},
    ).result_rows
    return ", ".join(
        f"finalizeAggregation(`{n}`) AS `{n}`" if t.startswith("AggregateFunction(") else f"`{n}`"
        for n, t in rows
    )


@contextlib.contextmanager
def _null_of(client: Any, database: str, query: str, bounds: dict[str, Any]) -> Any:
    """A ``Null`` table with the columns of ``query`` (dropped after): rows inserted into
    it are counted and kept nowhere."""
    name = f"{database}.export_check"
    client.command(f"DROP TABLE IF EXISTS {name}")
    client.command(f"CREATE TABLE {name} ENGINE = Null AS {query} LIMIT 0", parameters=bounds)
    try:
        yield name
    finally:
        client.command(f"DROP TABLE IF EXISTS {name}")


def export(
    client: Any,
    database: str,
    start: datetime,
    end: datetime,
    directory: Path,
    *,
    progress: Callable[[Exported], None] | None = None,
) -> list[Exported]:
    """Write every table's rows with its time in ``[start, end)``; the manifest last."""
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    bounds = {"start": start, "end": end}
    for table, column in time_columns().items():
        where = f"{column} >= {{start:DateTime64(3)}} AND {column} < {{end:DateTime64(3)}}"
        query = f"SELECT {_columns(client, database, table)} FROM {database}.{table} WHERE {where}"
        (rows,) = client.query(
            f"SELECT count() FROM {database}.{table} WHERE {where}", parameters=bounds
        ).result_rows[0]
        files, sums = {}, {}
        for ext, fmt in FORMATS.items():
            path = directory / f"{table}.{ext}"
            with open(path, "wb") as out:
                for chunk in client.raw_stream(query, parameters=bounds, fmt=fmt):
                    out.write(chunk)
            data = path.read_bytes()
            with _null_of(client, database, query, bounds) as check:
                counted = int(client.raw_insert(check, None, data, fmt=fmt).written_rows)
            if counted != rows:
                raise ExportError(f"{path} holds {counted} rows, {table} {rows} in the period")
            files[ext], sums[ext] = path.name, hashlib.sha256(data).hexdigest()
        entry = Exported(table, column, int(rows), files, sums)
        done.append(entry)
        if progress:
            progress(entry)
    manifest = {
        "database": database,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "tables": {e.table: asdict(e) for e in done},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return done

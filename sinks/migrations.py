"""Ordered, idempotent schema migrations from the ``.sql`` files beside this module.

``NNN_name.sql`` files apply in order; each applied version is recorded in
``schema_migrations`` and never applied again. A file holds one or more statements, each
ending with ``;`` at the end of a line (the last may omit it); every statement is
idempotent (``IF NOT EXISTS``), so a file that failed half-way can run again.
``{db}`` and ``{retention_days}`` come from settings (checked here), never from user input.

The ``.sql`` files are the single-node schema (what chDB and one ClickHouse server run).
With a cluster (``VIGIL_CLICKHOUSE_CLUSTER``), :mod:`sinks.cluster` rewrites each
statement into its replicated and distributed form, made ``ON CLUSTER``.

A materialized view only sees rows inserted after it exists: when a migration creates
``CREATE MATERIALIZED VIEW ... TO target AS SELECT ...``, the rows already stored are
backfilled with ``INSERT INTO target SELECT ...`` right after. Migrations run when a
process opens the store, before it writes, so nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sinks.cluster import LOCAL, Cluster, distributed

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TTL = re.compile(
    r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)\b.*?"
    r"\bTTL (toDateTime\(\w+\)) \+ INTERVAL \{retention_days\} DAY",
    re.S,
)
_KEPT_DAYS = re.compile(r"\bTTL .*?toIntervalDay\((\d+)\)")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_VIEW = re.compile(
    r"CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+(\w+)\.(\w+)\s+TO\s+(\w+\.\w+)\s+AS\s+(.*)",
    re.IGNORECASE | re.DOTALL,
)


class MigrationError(RuntimeError):
    """A migration could not be applied; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load() -> list[Migration]:
    """The migrations shipped with Vigil, in version order."""
    found = []
    for entry in resources.files("sinks.schema").iterdir():
        match = re.match(r"^(\d{3})_(\w+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {sorted(versions)}")
    return sorted(found, key=lambda m: m.version)


def render(
    migration: Migration, *, database: str, retention_days: int, cluster: Cluster | None = None
) -> list[str]:
    """The migration's statements, ready to run (on ``cluster``, their cluster form)."""
    if not _IDENT.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    sql = migration.sql.format(db=database, retention_days=int(retention_days))
    statements = [s for s in (strip_comments(s) for s in _STATEMENT_END.split(sql)) if s]
    if cluster is None:
        return statements
    return [form for s in statements for form in cluster.rewrite(s)]


def _run(client: Any, statement: str) -> None:
    """Run one statement; a materialized view created now is backfilled (on a cluster,
    through the distributed tables: every shard's rows, not only this node's)."""
    view = _VIEW.match(re.sub(r" ON CLUSTER \w+", "", statement, count=1))
    existed = view is not None and bool(
        client.query(
            "SELECT count() FROM system.tables WHERE database = {d:String} AND name = {n:String}",
            parameters={"d": view[1], "n": view[2]},
        ).result_rows[0][0]
    )
    client.command(statement)
    if view is not None and not existed:
        client.command(distributed(f"INSERT INTO {view[3]} {view[4]}"))


def strip_comments(statement: str) -> str:
    """``statement`` without its whole-line ``--`` comments, stripped."""
    lines = statement.splitlines()
    return "\n".join(x for x in lines if not x.strip().startswith("--")).strip()


def apply(
    client: Any, *, database: str, retention_days: int, cluster: Cluster | None = None
) -> list[int]:
    """Apply what is missing; returns the versions applied now."""
    if not _IDENT.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    for statement in bookkeeping(database, cluster):
        client.command(statement)
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    applied = []
    for migration in load():
        if migration.version in done:
            continue
        try:
            options = {"database": database, "retention_days": retention_days}
            for statement in render(migration, **options, cluster=cluster):
                _run(client, statement)
        except Exception as exc:  # the driver raises several types; all mean the same here
            raise MigrationError(
                f"{migration.version:03d}_{migration.name}.sql failed: {exc}"
            ) from exc
        client.insert(
            f"{database}.schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration.version)
    return applied


def bookkeeping(database: str, cluster: Cluster | None = None) -> list[str]:
    """The database and the table of applied migrations. On a cluster, that table is one
    replica set spanning every node (no shard in its path): whichever node a process
    reaches, it sees the same list.

    >>> print(bookkeeping("vigil", Cluster("c"))[1])  # doctest: +ELLIPSIS
    CREATE TABLE ... ON CLUSTER c ... ReplicatedMergeTree('/clickhouse/tables/all/vigil/...
    """
    on = f" ON CLUSTER {cluster.name}" if cluster else ""
    engine = (
        f"ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{{replica}}')"
        if cluster
        else "MergeTree"
    )
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}{on}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations{on} "
        "(version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        f"ENGINE = {engine} ORDER BY version",
    ]


def expiring() -> dict[str, str]:
    """Table -> the time its rows expire from (``retention_days`` after it), for every
    table a migration gives a TTL."""
    found = {}
    for migration in load():
        for statement in _STATEMENT_END.split(migration.sql):
            match = _TTL.search(statement)
            if match:
                found[match[1]] = match[2]
    return found


def keep_for(
    client: Any, *, database: str, retention_days: int, cluster: Cluster | None = None
) -> list[str]:
    """Make every expiring table keep rows ``retention_days`` days, where it keeps them for
    another number (``VIGIL_RETENTION_DAYS`` changed after the tables were made: the
    migrations ran once, with the value of then); the tables changed. ClickHouse then
    drops what the new TTL has expired, in the background (on a cluster: the local
    tables, on every node)."""
    if not _IDENT.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    days = int(retention_days)
    engines = dict(
        client.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {d:String}",
            parameters={"d": database},
        ).result_rows
    )
    changed = []
    suffix, on = (LOCAL, f" ON CLUSTER {cluster.name}") if cluster else ("", "")
    for table, since in expiring().items():
        kept = _KEPT_DAYS.search(engines.get(table + suffix, ""))
        if kept is not None and int(kept[1]) != days:
            client.command(
                f"ALTER TABLE {database}.{table}{suffix}{on} "
                f"MODIFY TTL {since} + INTERVAL {days} DAY"
            )
            changed.append(table)
    return changed

"""Ordered, idempotent schema migrations from the ``.sql`` files beside this module.

``NNN_name.sql`` files apply in order; each applied version is recorded in
``schema_migrations`` and never applied again. ``{db}`` and ``{retention_days}`` come
from settings (checked here), never from user input.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


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


def render(migration: Migration, *, database: str, retention_days: int) -> str:
    if not _IDENT.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    return migration.sql.format(db=database, retention_days=int(retention_days))


def apply(client: Any, *, database: str, retention_days: int) -> list[int]:
    """Apply what is missing; returns the versions applied now."""
    if not _IDENT.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = {
        row[0]
        for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows
    }
    applied = []
    for migration in load():
        if migration.version in done:
            continue
        try:
            client.command(render(migration, database=database, retention_days=retention_days))
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

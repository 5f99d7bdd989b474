"""``vigil forget USER``: delete one user's rows everywhere Vigil keeps them.

The SDK stores a user as a keyed hash (``producers.privacy``; the id itself in privacy
mode ``off``), under any attribute named like a user (``user``, ``user_id``, ``email``,
...) or inside an error's context. :func:`forget` finds those rows in every table that
keeps attributes (raw events, spans, logs) and in feature calls, counts them and deletes
them (a mutation it waits for); then rewrites each archived Parquet file that holds any
(``sinks.archive``: the file is loaded into a staging copy, written back without the
user's rows, counted again, and its manifest entry updated, so a restore checks it as
before).

What cannot be taken out: windows, rollups and alerts hold counts and quantiles over
everyone, not rows per user; the user's uses stay counted in them, with nothing that
names the user.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from producers.privacy import USER_KEY
from sinks import archive

#: Tables whose ``attrs`` may name a user, and the one that keeps the user in a column.
WITH_ATTRS = ("events", "spans", "logs")
USER_COLUMN = "feature_calls"

#: Rows naming the user: an attribute (top level, or in an error's context) named like a
#: user whose raw JSON value is the user, quoted.
_IN_ATTRS = (
    "arrayExists(kv -> match(kv.1, {pattern:String}) AND kv.2 = {quoted:String}, "
    "arrayConcat(JSONExtractKeysAndValuesRaw(attrs), "
    "JSONExtractKeysAndValuesRaw(attrs, 'context')))"
)
_IN_COLUMN = "user = {user:String}"


@dataclass(frozen=True)
class Forgotten:
    where: str  # a table, or an archived file relative to the archive directory
    rows: int


def condition(table: str) -> str:
    """The WHERE clause that picks the user's rows of ``table``."""
    return _IN_COLUMN if table == USER_COLUMN else _IN_ATTRS


def parameters(user: str) -> dict[str, str]:
    """The bound values of :func:`condition` for ``user`` as stored (hash or id)."""
    return {
        "pattern": "(?i)" + USER_KEY.pattern,
        "quoted": json.dumps(user, ensure_ascii=False),
        "user": user,
    }


def forget(
    client: Any,
    database: str,
    user: str,
    archive_dir: Path | None,
    *,
    progress: Callable[[Forgotten], None] | None = None,
) -> list[Forgotten]:
    """Delete ``user``'s rows (``user`` as stored) from the tables and the archive."""
    params = parameters(user)
    done = []
    for table in (*WITH_ATTRS, USER_COLUMN):
        where = condition(table)
        count = client.query(
            f"SELECT count() FROM {database}.{table} WHERE {where}", parameters=params
        ).result_rows[0][0]
        if count:
            client.command(
                f"ALTER TABLE {database}.{table} DELETE WHERE {where} SETTINGS mutations_sync = 2",
                parameters=params,
            )
        done.append(Forgotten(table, int(count)))
        if progress:
            progress(done[-1])
    if archive_dir is not None and (archive_dir / archive.MANIFEST).exists():
        for entry in _rewrite_archive(client, database, archive_dir, params):
            done.append(entry)
            if progress:
                progress(entry)
    return done


def _rewrite_archive(
    client: Any, database: str, directory: Path, params: dict[str, str]
) -> list[Forgotten]:
    manifest = archive.load(directory)
    out = []
    for key, raw in sorted(manifest.items()):
        entry = archive.Archived(**raw)
        if entry.table not in (*WITH_ATTRS, USER_COLUMN):
            continue
        path = directory / entry.file
        where = condition(entry.table)
        with archive.copy_of(client, database, entry.table, "forget_staging") as staging:
            client.raw_insert(staging, None, path.read_bytes(), fmt="Parquet")
            found = client.query(
                f"SELECT count() FROM {staging} WHERE {where}", parameters=params
            ).result_rows[0][0]
            if not found:
                continue
            kept = b"".join(
                client.raw_stream(
                    f"SELECT * FROM {staging} WHERE NOT ({where})", parameters=params,
                    fmt="Parquet",
                )
            )  # fmt: skip
        with archive.copy_of(client, database, entry.table, "forget_check", null=True) as check:
            counted = int(client.raw_insert(check, None, kept, fmt="Parquet").written_rows)
        if counted != entry.rows - found:
            raise archive.ArchiveError(
                f"{path}: {counted} rows would be kept, expected {entry.rows - found}: "
                "left as it was"
            )
        tmp = path.with_suffix(".forget.tmp")
        tmp.write_bytes(kept)
        tmp.replace(path)
        sha = hashlib.sha256(kept).hexdigest()
        manifest[key] = {**raw, "rows": counted, "sha256": sha}
        archive.save(directory, manifest)
        out.append(Forgotten(entry.file, int(found)))
    return out

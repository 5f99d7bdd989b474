"""The schema's form for a ClickHouse cluster (``VIGIL_CLICKHOUSE_CLUSTER``): each
migration statement rewritten for replicas and shards.

Every table ``T`` of the single-node schema becomes two, both made ``ON CLUSTER``:

- ``T_local``, on every node: the same columns and keys with the replicated form of its
  engine (``MergeTree`` -> ``ReplicatedMergeTree('/clickhouse/tables/{shard}/DB/T_local',
  '{replica}')``, the engine's own arguments after those; ``{shard}`` and ``{replica}``
  are the servers' macros), keeping the last 1,000 insert tokens
  (``replicated_deduplication_window``) where a single node kept
  ``non_replicated_deduplication_window``;
- ``T``, a ``Distributed`` table over the ``T_local`` of every shard: what every query
  reads and the writer inserts into, so no query changes between the two modes.

How writes reach the shards exactly once: the writer's tables (``events``, ``windows``,
``alerts``, ``anomaly_scores``, ``worker_state``) are sharded by their ``partition``
column, the Kafka partition, and each insert holds one partition's rows, so a whole
insert lands on one shard, always the same one for the same rows. The writer inserts
synchronously (``insert_distributed_sync``: the insert returns once the shard stored it,
so a checkpoint is never ahead of its rows) and the insert's deduplication token travels
with the insert to the shard, whose replicated table drops a retried block as a single
node does. Rows that must replace each other (a window stored again after a replay) come
from the same Kafka partition, so they meet on one shard and ``FINAL`` still merges them.

Materialized views are made on the local tables (``FROM events_local`` into
``series_daily_local``): each shard rolls up the raw rows it stores, and the reads
through the distributed tables merge the shards' partial states (every rollup query
already aggregates with ``-Merge`` functions and ``GROUP BY``). The backfill of a new
view reads and writes through the distributed tables, so it covers every shard (tables
that no writer inserts into are sharded by a hash of their sort key for it).

Statements of another kind are refused (:class:`ClusterError`): a new migration must say
how it runs on a cluster before it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The suffix of the replicated table on each node behind a distributed table.
LOCAL = "_local"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CREATE_TABLE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(\(.*\))\s*"
    r"ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?(.*)",
    re.DOTALL,
)
_CREATE_VIEW = re.compile(
    r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+)\s+TO\s+(\w+)\.(\w+)\s+AS\s+(.*)",
    re.DOTALL | re.IGNORECASE,
)
_ALTER = re.compile(r"ALTER TABLE (\w+)\.(\w+)\s+(.*)", re.DOTALL)
_COLUMN_CLAUSE = re.compile(r"(ADD|DROP|MODIFY|RENAME|COMMENT) COLUMN\b", re.IGNORECASE)
_ORDER_BY = re.compile(r"\bORDER BY\s*(\([^)]*\)|\w+)")
_COLUMN_NAMES = re.compile(r"^\s*(\w+)\s+\S", re.MULTILINE)
_DEDUP_SETTING = "non_replicated_deduplication_window"


class ClusterError(ValueError):
    """A statement has no cluster form."""


@dataclass(frozen=True)
class Cluster:
    """The cluster named ``name`` in the servers' ``remote_servers`` configuration."""

    name: str

    def __post_init__(self) -> None:
        if not _IDENT.match(self.name):
            raise ClusterError(f"cluster name {self.name!r} is not a plain identifier")

    @property
    def on(self) -> str:
        return f"ON CLUSTER {self.name}"

    def rewrite(self, statement: str) -> list[str]:
        """The cluster form of one single-node migration statement.

        >>> c = Cluster("vigil")
        >>> local, dist = c.rewrite(
        ...     "CREATE TABLE IF NOT EXISTS db.t (partition UInt16, x Int64)\\n"
        ...     "ENGINE = ReplacingMergeTree(x) ORDER BY (partition)"
        ... )
        >>> print(local)
        CREATE TABLE IF NOT EXISTS db.t_local ON CLUSTER vigil (partition UInt16, x Int64)
        ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t_local', '{replica}', x) ORDER BY (partition)
        >>> print(dist)
        CREATE TABLE IF NOT EXISTS db.t ON CLUSTER vigil AS db.t_local ENGINE = Distributed(vigil, db, t_local, partition)
        """  # noqa: E501
        for pattern, build in (
            (_CREATE_TABLE, self._table),
            (_CREATE_VIEW, self._view),
            (_ALTER, self._alter),
        ):
            match = pattern.match(statement)
            if match:
                return build(match)
        raise ClusterError(f"no cluster form for: {statement[:80]!r}")

    def _table(self, m: re.Match[str]) -> list[str]:
        db, table, columns, engine, args, rest = m.groups()
        local = table + LOCAL
        path = f"'/clickhouse/tables/{{shard}}/{db}/{local}', '{{replica}}'"
        arguments = f"{path}, {args}" if args and args.strip() else path
        rest = rest.replace(_DEDUP_SETTING, "replicated_deduplication_window")
        replicated = (
            f"CREATE TABLE IF NOT EXISTS {db}.{local} {self.on} {columns}\n"
            f"ENGINE = Replicated{engine}({arguments}){rest}"
        )
        names = set(_COLUMN_NAMES.findall(columns.strip()[1:-1]))
        if "partition" in names:
            key = "partition"
        else:
            order = _ORDER_BY.search(rest)
            if order is None:
                raise ClusterError(f"{db}.{table} has no sort key to shard by")
            key = f"cityHash64({order[1].strip('()')})"
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {db}.{table} {self.on} AS {db}.{local} "
            f"ENGINE = Distributed({self.name}, {db}, {local}, {key})"
        )
        return [replicated, distributed]

    def _view(self, m: re.Match[str]) -> list[str]:
        db, view, target_db, target, select = m.groups()
        select = re.sub(rf"\b{re.escape(db)}\.(\w+)\b", rf"{db}.\1{LOCAL}", select)
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{view} {self.on} "
            f"TO {target_db}.{target}{LOCAL} AS {select}"
        ]

    def _alter(self, m: re.Match[str]) -> list[str]:
        db, table, clauses = m.groups()
        out = [
            f"ALTER TABLE {db}.{table}{LOCAL} {self.on} "
            + clauses.replace(_DEDUP_SETTING, "replicated_deduplication_window")
        ]
        columns = [c for c in split_clauses(clauses) if _COLUMN_CLAUSE.match(c)]
        if columns:  # the distributed table's columns follow its local table's
            out.append(f"ALTER TABLE {db}.{table} {self.on} " + ",\n    ".join(columns))
        return out


def distributed(statement: str) -> str:
    """``statement`` with every local table named by its distributed table.

    >>> distributed("INSERT INTO db.daily_local SELECT x FROM db.events_local")
    'INSERT INTO db.daily SELECT x FROM db.events'
    """
    return re.sub(rf"\b(\w+\.\w+){LOCAL}\b", r"\1", statement)


def split_clauses(clauses: str) -> list[str]:
    """An ``ALTER``'s clauses: split at the commas outside parentheses and quotes.

    >>> split_clauses("ADD COLUMN a Int8 DEFAULT if(x > 0, 1, 0), MODIFY ORDER BY (a, b)")
    ['ADD COLUMN a Int8 DEFAULT if(x > 0, 1, 0)', 'MODIFY ORDER BY (a, b)']
    """
    out, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(clauses):
        if ch == "'" and (i == 0 or clauses[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            out.append(clauses[start:i].strip())
            start = i + 1
    out.append(clauses[start:].strip())
    return [c for c in out if c]

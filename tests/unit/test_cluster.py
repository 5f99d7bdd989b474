"""The schema's cluster form (``VIGIL_CLICKHOUSE_CLUSTER``): the DDL generated for every
migration, checked statement by statement against the single-node form, and parsed by
ClickHouse itself (chDB's ``formatQuery``: no cluster runs here, but the parser is the
servers')."""

from __future__ import annotations

import re

import chdb
import pytest

from sinks import migrations
from sinks.cluster import Cluster, ClusterError, distributed, split_clauses
from sinks.settings import StoreSettings
from sinks.store import StoreError, open_client
from sinks.writer import ClickHouseSink

CLUSTER = Cluster("prod")
DB = "vigil"
#: The tables the writer inserts into: each insert holds one Kafka partition's rows.
WRITTEN = {"events", "windows", "alerts", "anomaly_scores", "worker_state"}


def _pairs() -> list[tuple[str, list[str]]]:
    """Each single-node statement of every migration with its cluster form."""
    out = []
    for m in migrations.load():
        for statement in migrations.render(m, database=DB, retention_days=90):
            out.append((statement, CLUSTER.rewrite(statement)))
    return out


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parses(statement: str) -> str:
    """The statement as ClickHouse's own parser formats it (raises on a syntax error)."""
    return str(chdb.query(f"SELECT formatQuery({_literal(statement)})", "TSVRaw"))


def _single_node(statement: str) -> str:
    """Undo the cluster form by hand (independently of ``sinks.cluster``)."""
    s = statement.replace(" ON CLUSTER prod", "").replace("_local", "")
    s = re.sub(
        r"Replicated(\w*MergeTree)\('/clickhouse/tables/\{shard\}/vigil/\w+', '\{replica\}'(, )?",
        r"\1(",
        s,
    )
    s = s.replace("MergeTree()", "MergeTree")
    return s.replace("replicated_deduplication_window", "non_replicated_deduplication_window")


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_statement_has_a_cluster_form_that_clickhouse_parses():
    pairs = _pairs()
    assert len(pairs) >= 20
    for _, forms in pairs:
        for form in forms:
            assert " ON CLUSTER prod " in form, form[:80]
            formatted = _parses(form)
            assert "ON CLUSTER prod" in formatted
    # The parser is not lenient: a broken statement fails.
    with pytest.raises(RuntimeError, match="Syntax error"):
        _parses("CREATE TABLE vigil.x ON CLUSTER prod (a Int8) ENGINE = ReplicatedMergeTree((")


def test_every_table_becomes_a_replicated_local_table_and_a_distributed_one():
    tables = {}
    for single, forms in _pairs():
        created = re.match(r"CREATE TABLE IF NOT EXISTS vigil\.(\w+)", single)
        if not created:
            continue
        table = created[1]
        local, dist = forms
        # Nothing lost, nothing added: undone by hand, the local form is the table itself.
        assert _squash(_single_node(local)) == _squash(single), table
        path = f"'/clickhouse/tables/{{shard}}/vigil/{table}_local', '{{replica}}'"
        assert re.search(rf"ENGINE = Replicated\w*MergeTree\({re.escape(path)}", local), local
        assert "non_replicated" not in local
        want = (
            rf"CREATE TABLE IF NOT EXISTS vigil\.{table} ON CLUSTER prod AS vigil\.{table}_local "
        )
        assert re.match(want + r"ENGINE = Distributed\(prod, vigil, " + f"{table}_local, ", dist)
        tables[table] = re.fullmatch(r".*ENGINE = Distributed\(prod, vigil, \w+, (.*)\)", dist)[1]
    assert set(tables) >= WRITTEN | {"executions", "spans", "logs", "series_daily"}
    # A window, an alert or a checkpoint stored again after a replay meets its first copy
    # on the same shard (replacing and deduplication work within one shard).
    assert {t for t, key in tables.items() if key == "partition"} == WRITTEN
    assert all(key.startswith("cityHash64(") for t, key in tables.items() if t not in WRITTEN)


def test_views_read_and_write_local_tables_and_backfill_through_the_distributed_ones():
    views = [(s, f) for s, (f, *rest) in _pairs() if s.startswith("CREATE MATERIALIZED VIEW")]
    assert len(views) >= 6
    for single, form in views:
        names = set(re.findall(r"\bvigil\.(\w+)", form))
        view = re.match(r"CREATE MATERIALIZED VIEW IF NOT EXISTS vigil\.(\w+)", form)[1]
        assert all(n.endswith("_local") for n in names - {view}), names
        assert _squash(_single_node(form)) == _squash(single)
        # The backfill reads every shard: no local table is named in it.
        select = re.split(r"\sAS\s", form, maxsplit=1)[1]
        assert "_local" not in distributed(select)
        assert _squash(distributed(select)) == _squash(re.split(r"\sAS\s", single, maxsplit=1)[1])


def test_alters_change_the_local_tables_and_the_distributed_columns_with_them():
    alters = [(s, f) for s, f in _pairs() if s.startswith("ALTER TABLE")]
    assert alters
    for single, forms in alters:
        table = re.match(r"ALTER TABLE vigil\.(\w+)", single)[1]
        assert forms[0].startswith(f"ALTER TABLE vigil.{table}_local ON CLUSTER prod ")
        assert _squash(_single_node(forms[0])) == _squash(single)
        clauses = split_clauses(re.split(rf"vigil\.{table}\s", single, maxsplit=1)[1])
        columns = [c for c in clauses if " COLUMN " in f" {c} "]
        if columns:
            assert forms[1] == f"ALTER TABLE vigil.{table} ON CLUSTER prod " + ",\n    ".join(
                columns
            )
            assert not re.search(r"ORDER BY|SETTING", forms[1])
        else:
            assert len(forms) == 1


def test_the_single_node_schema_is_untouched_and_other_statements_are_refused():
    for m in migrations.load():
        body = migrations.strip_comments(m.sql.format(db=DB, retention_days=90))
        for statement in migrations.render(m, database=DB, retention_days=90):
            assert "_local" not in statement and "ON CLUSTER" not in statement
            assert _squash(statement) in _squash(body.replace(";", " "))
    with pytest.raises(ClusterError, match="no cluster form"):
        CLUSTER.rewrite("DROP TABLE vigil.events")
    with pytest.raises(ClusterError, match="plain identifier"):
        Cluster("prod; DROP")


def test_bookkeeping_is_one_replica_set_on_a_cluster():
    single, cluster = migrations.bookkeeping(DB), migrations.bookkeeping(DB, CLUSTER)
    assert "MergeTree ORDER BY" in single[1] and "ON CLUSTER" not in " ".join(single)
    assert all(" ON CLUSTER prod" in s for s in cluster)
    assert "'/clickhouse/tables/all/vigil/schema_migrations'" in cluster[1]
    for statement in cluster:
        _parses(statement)


def test_a_cluster_writer_inserts_synchronously_with_settings_clickhouse_knows(tmp_path):
    writer = ClickHouseSink(
        StoreSettings(clickhouse_dsn="http://x:8123", clickhouse_cluster="prod")
    )
    assert writer._distributed == {"insert_distributed_sync": 1}
    assert ClickHouseSink(StoreSettings(data_dir=tmp_path))._distributed == {}
    known = str(chdb.query("SELECT name FROM system.settings", "TSVRaw")).split()
    assert set(writer._distributed) <= set(known)


def test_embedded_chdb_refuses_a_cluster(tmp_path):
    with pytest.raises(StoreError, match="needs ClickHouse servers"):
        open_client(StoreSettings(data_dir=tmp_path, clickhouse_cluster="prod"))

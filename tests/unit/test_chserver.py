"""The pure parts of ``sinks.chserver``: where a request's statement ends and its data
begins, where a read-only request's SETTINGS go, and which hosts need a password."""

import gzip
import zlib

import lz4.frame
import pytest

from sinks.chserver import _INSERT_HEAD, Engine, StatementError, _decompress, _loopback


def test_an_insert_in_the_body_is_split_from_its_data_at_the_statements_line():
    body = b"INSERT INTO `t` (`a`, `b`) FORMAT Native\n\x02\x01\x01a\nFORMAT\n"
    head = _INSERT_HEAD.match(body)
    assert head[0].decode().strip() == "INSERT INTO `t` (`a`, `b`) FORMAT Native"
    assert body[head.end() :] == b"\x02\x01\x01a\nFORMAT\n"  # data may hold anything
    assert _INSERT_HEAD.match(b"SELECT 1 FORMAT Native\n") is None
    assert _INSERT_HEAD.match(b"INSERT INTO t SELECT 1") is None  # no data: a statement


def test_a_readonly_requests_settings_go_before_its_format_and_join_its_own():
    clause = Engine._with_settings_clause
    ro = {"readonly": "1"}
    assert (
        clause("SELECT 1\n FORMAT Native", ro) == "SELECT 1 SETTINGS readonly = '1'\n FORMAT Native"
    )
    assert clause("SELECT 1 SETTINGS max_threads = 2", ro) == (
        "SELECT 1 SETTINGS max_threads = 2, readonly = '1'"
    )
    inner = "SELECT * FROM (SELECT 1 SETTINGS max_threads = 2) AS s"
    assert clause(inner, ro) == inner + " SETTINGS readonly = '1'"
    assert clause("SELECT 'it''s';", {"x": "a'b"}) == "SELECT 'it''s' SETTINGS x = 'a\\'b'"
    # A table named settings is not the clause (clickhouse-connect's first query).
    table = "SELECT name, value FROM system.settings LIMIT 10000"
    assert clause(table, ro) == table + " SETTINGS readonly = '1'"


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("lz4", lz4.frame.compress)],
)
def test_bodies_are_decompressed_by_their_content_encoding(encoding, pack):
    data = b"row\n" * 1000
    assert _decompress(pack(data), encoding) == data
    assert _decompress(data, "") == data and _decompress(data, "identity") == data


def test_an_unknown_encoding_is_a_clickhouse_error():
    with pytest.raises(StatementError, match="Unknown Content-Encoding 'br2'"):
        _decompress(b"x", "br2")


def test_only_loopback_addresses_go_without_a_password():
    assert all(_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org"))

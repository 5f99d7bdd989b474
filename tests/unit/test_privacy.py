"""Privacy: keyed id hashes and sanitized values."""

from __future__ import annotations

import orjson
import pytest

from producers.privacy import REDACTED, Privacy


def test_an_id_hash_is_stable_under_one_secret_and_differs_under_another():
    a, b = Privacy("users", "secret-a"), Privacy("users", "secret-a")
    other = Privacy("users", "secret-b")
    assert a.user("alice") == b.user("alice") != other.user("alice")
    assert a.user("alice") != a.user("bob")
    assert a.user(42) == a.user("42")


def test_without_a_secret_ids_are_hidden_but_not_joinable_across_processes():
    one, two = Privacy("users", ""), Privacy("users", "")
    assert one.user("alice") != two.user("alice") and not one.stable


@pytest.mark.parametrize(
    ("mode", "user_hashed", "session_hashed"),
    [("off", False, False), ("users", True, False), ("all", True, True)],
)
def test_the_mode_decides_which_ids_are_hashed(mode, user_hashed, session_hashed):
    p = Privacy(mode, "k")
    assert (p.user("alice") != "alice") == user_hashed
    assert (p.session("s-1") != "s-1") == session_hashed
    assert p.user(None) is None and p.session(None) is None


def test_sanitize_redacts_secrets_hashes_ids_and_bounds_sizes():
    p = Privacy("all", "k")
    value = {
        "Authorization": "Bearer x",
        "db_password": "p",
        "apiKey": "k",
        "email": "a@b.c",
        "session_id": "s1",
        "note": "0123456789abc",
        "items": [1, 2, 3, 4, 5],
    }
    out = p.sanitize(value)
    assert out["Authorization"] == out["db_password"] == out["apiKey"] == REDACTED
    assert out["email"] == p.user("a@b.c") and out["session_id"] == p.session("s1")
    p = Privacy("off", "k", max_chars=8, max_items=3, max_depth=2)
    assert p.sanitize(dict.fromkeys("abcde", 1)) == {"a": 1, "b": 1, "c": 1, "...": "2 more"}
    assert p.sanitize("0123456789abc") == "01234567...[+5]"
    assert p.sanitize([1, 2, 3, 4, 5]) == [1, 2, 3, "... 2 more"]
    assert p.sanitize({"a": {"b": {"c": 1}}}) == {"a": {"b": "<dict>"}}


def test_sanitize_makes_anything_json_safe():
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError

    p = Privacy("users", "k")
    out = p.sanitize(
        {
            "big": 2**80,
            "nan": float("nan"),
            "raw": b"abc",
            "set": {1},
            "obj": BadRepr(),
            1: "int key",
        }
    )
    assert out == {
        "big": str(2**80),
        "nan": "nan",
        "raw": "<bytes: 3>",
        "set": [1],
        "obj": "<BadRepr>",
        "1": "int key",
    }
    orjson.dumps(out)

"""What leaves the host about people and parameters: keyed id hashes and safe values.

User ids (and, in mode ``all``, session ids) are replaced by a keyed BLAKE2b hash: the
same id always gives the same hash under one key, so unique users can be counted, but
nobody without the key can test a guess. Parameters captured from calls are sanitized:
keys that look like secrets are redacted, keys that hold user or session ids are hashed
as ids are, long values are truncated, and anything that is not JSON-safe becomes a
short descriptive string.

>>> p = Privacy("users", "k3y")
>>> p.user("alice") == p.user("alice") != "alice"
True
>>> p.session("s-1")
's-1'
>>> p.sanitize({"page": 2, "password": "hunter2", "blob": b"xx", "n": float("nan")})
{'page': 2, 'password': '[redacted]', 'blob': '<bytes: 2>', 'n': 'nan'}
>>> p.sanitize({"user_id": "alice"}) == {"user_id": p.user("alice")}
True
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from typing import Any

#: Keys whose values never leave the host.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|auth|credential|cookie|"
    r"private[-_]?key|signature|\bssn\b|card[-_]?(number|no)|cvv",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
#: Keys whose values are user or session ids: hashed like :meth:`Privacy.user` does.
USER_KEY = re.compile(r"^(user|user[-_]?id|userid|uid|email|username)$", re.IGNORECASE)
SESSION_KEY = re.compile(r"^(session|session[-_]?id|sid)$", re.IGNORECASE)


class Privacy:
    """Hashes ids and sanitizes values according to a mode (``off``, ``users``, ``all``)."""

    def __init__(
        self,
        mode: str,
        secret: str,
        *,
        max_chars: int = 256,
        max_message_chars: int = 4096,
        max_items: int = 32,
        max_depth: int = 4,
    ) -> None:
        self.mode = mode
        # A random key still hides ids; it only stops joining them across processes.
        self.stable = bool(secret)
        self._key = hashlib.blake2b(secret.encode() or os.urandom(32), digest_size=32).digest()
        self.max_chars = max_chars
        #: Log and error messages: long enough for a SQL error, within the schema's 8192.
        self.max_message_chars = max_message_chars
        self.max_items = max_items
        self.max_depth = max_depth
        self._hashes: dict[str, str] = {}

    def hash_id(self, value: object) -> str:
        """``h:`` and 24 hex digits of the keyed hash of ``str(value)``."""
        text = str(value)
        cached = self._hashes.get(text)
        if cached is None:
            digest = hashlib.blake2b(text.encode(), key=self._key, digest_size=12).hexdigest()
            cached = "h:" + digest
            if len(self._hashes) >= 10_000:
                self._hashes.clear()
            self._hashes[text] = cached
        return cached

    def user(self, value: object) -> str | None:
        if value is None:
            return None
        return self.hash_id(value) if self.mode != "off" else self.text(value)

    def session(self, value: object) -> str | None:
        if value is None:
            return None
        return self.hash_id(value) if self.mode == "all" else self.text(value)

    def text(self, value: object, limit: int | None = None) -> str:
        """``value`` as a string of at most ``limit`` (default ``max_chars``) characters."""
        limit = self.max_chars if limit is None else limit
        text = value if isinstance(value, str) else _describe(value)
        if len(text) > limit:
            return f"{text[:limit]}...[+{len(text) - limit}]"
        return text

    def message(self, error: BaseException | str) -> str:
        """The message of an exception (or a message), bounded to ``max_message_chars``; an
        exception whose ``__str__`` fails is described by its type."""
        if isinstance(error, str):
            return self.text(error, self.max_message_chars)
        try:
            text = str(error)
        except Exception:  # a broken __str__ on a host exception
            text = f"<{type(error).__name__}>"
        return self.text(text, self.max_message_chars)

    def sanitize(self, value: Any, depth: int = 0) -> Any:
        """A JSON-safe copy of ``value`` with secrets redacted and sizes bounded."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if -(2**63) <= value < 2**63 else str(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return self.text(value)
        if depth >= self.max_depth:
            return f"<{type(value).__name__}>"
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for i, (key, item) in enumerate(value.items()):
                if i >= self.max_items:
                    out["..."] = f"{len(value) - i} more"
                    break
                name = str(key)[:64]
                if SECRET_KEY.search(name):
                    out[name] = REDACTED
                elif USER_KEY.match(name) and isinstance(item, str | int):
                    out[name] = self.user(item)
                elif SESSION_KEY.match(name) and isinstance(item, str | int):
                    out[name] = self.session(item)
                else:
                    out[name] = self.sanitize(item, depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            out_list = [self.sanitize(item, depth + 1) for item in items[: self.max_items]]
            if len(items) > self.max_items:
                out_list.append(f"... {len(items) - self.max_items} more")
            return out_list
        return self.text(value)


def _describe(value: object) -> str:
    """A short string for any object, without trusting its ``__repr__`` to behave."""
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{type(value).__name__}: {len(value)}>"
    try:
        return repr(value)
    except Exception:  # a broken __repr__ of a host object must not break the host
        return f"<{type(value).__name__}>"

"""Asking a worker's HTTP API (stdlib only): JSON in and out, with its bearer token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class Unreachable(Exception):
    """Nothing answers at that address."""


def call(
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    method: str | None = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """``(status, JSON body)``; an error status comes back, not raised. Raises
    :class:`Unreachable` when nothing listens at ``url``."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read(), url, response.status)
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read(), url, exc.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        raise Unreachable(f"{url}: {exc}") from None


def _json(raw: bytes, url: str, status: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return {
            "error": f"{url} answered {status} without JSON",
            "body": raw[:200].decode(errors="replace"),
        }

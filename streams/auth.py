"""The HTTP API's bearer token: :func:`auth_middleware` checks
``Authorization: Bearer <token>`` (or the dashboard's cookie) in constant time on every
path but :data:`OPEN_PATHS` (probes carry no token); where the token comes from when none
is configured (made once and kept in the data directory).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

#: Liveness and readiness probes: answered without a token.
OPEN_PATHS = frozenset({"/health", "/ready"})


def token_matches(header: str | None, token: str) -> bool:
    """Whether ``header`` is ``Bearer <token>``; constant time in the token's content."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and _same(given.strip(), token)


def _same(given: str | None, token: str) -> bool:
    """``given == token`` in time that does not depend on where they differ."""
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


#: The cookie a browser holds the token in (HttpOnly, SameSite=Strict), set when the
#: dashboard is opened once as ``/dashboard?token=...``.
COOKIE = "vigil_token"


def auth_middleware(token: str) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware: 401 without the bearer token (header, or the dashboard's
    cookie), except on :data:`OPEN_PATHS`."""
    from aiohttp import web

    @web.middleware
    async def check(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        if (
            request.path in OPEN_PATHS
            or token_matches(request.headers.get("Authorization"), token)
            or _same(request.cookies.get(COOKIE), token)
        ):
            return await handler(request)
        if request.path == "/dashboard" and _same(request.query.get("token"), token):
            # The token moves into a cookie and out of the address bar (and history).
            moved = web.HTTPFound("/dashboard")
            moved.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            raise moved
        return web.json_response(
            {"error": "this API needs 'Authorization: Bearer <token>' (VIGIL_API_TOKEN)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="vigil"'},
        )

    return check


TOKEN_FILE = "api-token"


def resolve_token(configured: str, data_dir: Path) -> str | None:
    """The token the API requires: ``configured``; None for ``none``; else the one kept
    in ``<data_dir>/api-token``, made (random, mode 0600) when there is none."""
    if _off(configured):
        return None
    known = configured or _kept(data_dir)
    if known:
        return known
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def client_token(configured: str, data_dir: Path) -> str | None:
    """The token a client (CLI, demo, tests) sends: the configured one
    (``WorkerSettings.api_token``, from ``VIGIL_API_TOKEN``), else the file the worker
    keeps under the data directory, if any."""
    return None if _off(configured) else configured or _kept(data_dir)


def _off(configured: str) -> bool:
    return configured.strip().lower() == "none"


def _kept(data_dir: Path) -> str | None:
    """The token the worker keeps under ``data_dir``, if it made one."""
    path = data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else None

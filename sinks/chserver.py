"""ClickHouse's HTTP interface in front of a chDB data directory.

chDB lets one process open a data directory (a second one gets error code 36). With
this process owning it, any number of workers, CLIs and reports reach the same tables as
clients of a ClickHouse server: ``VIGIL_CLICKHOUSE_DSN=http://127.0.0.1:PORT``,
clickhouse-connect's own HTTP client, ClickHouse's SQL executed by ClickHouse's engine.
It is how more than one worker shares history on a machine without a ClickHouse server
(and how the fault suite kills one of two workers); production runs a server.

What it serves, as ClickHouse does on port 8123 (the subset clickhouse-connect uses):

- ``GET|POST /?query=...``, the SQL in ``query``, in the body, or both (ClickHouse joins
  them); an ``INSERT ... FORMAT X`` takes its data from the body (after the statement's
  line when the statement is in the body too), decompressed by ``Content-Encoding``
  (lz4, zstd, gzip, deflate);
- ``param_NAME`` bound to ``{NAME:Type}`` by ClickHouse; ``database``; any other parameter
  is a setting for that request only; ``default_format`` (TabSeparated otherwise);
- ``readonly=1`` lets only reading statements through (ClickHouse refuses writes with
  code 164, as a server does for such a user);
- errors as ClickHouse words them, with ``X-ClickHouse-Exception-Code``; the summary of
  each statement in ``X-ClickHouse-Summary``;
- ``GET /ping`` -> ``Ok.``;
- with ``VIGIL_CHSERVER_PASSWORD`` set, Basic or ``X-ClickHouse-Key`` authentication,
  compared in constant time; without it, only a loopback address is served;
- ``SET`` and ``USE`` are refused: with one connection for every client they would
  outlive the request (settings and the database travel as URL parameters).

Statements run one at a time (one chDB connection, one lock); settings are made to match
each request before its statement, so one client's settings never leak into another's.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hmac
import json
import logging
import os
import re
import signal
import socket
import tempfile
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sinks.settings import ChServerSettings

log = logging.getLogger("vigil.chserver")

#: URL parameters that are not settings (ClickHouse's HTTP handler takes them itself).
TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "wait_end_of_query",
        "buffer_size",
        "user",
        "password",
        "quota_key",
        "client_protocol_version",
        "role",
    }
)
#: What a setting's and a database's name may be (both go into SQL text).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INSERT_DATA = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<fmt>\w+)\s*$", re.I | re.S
)
#: An INSERT whose data follows its statement in the body (clickhouse-connect's inserts).
_INSERT_HEAD = re.compile(rb"^\s*INSERT\s+INTO\s+.+?\s+FORMAT\s+\w+[ \t]*\r?\n", re.I | re.S)
_READING = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b", re.I)
#: Statements that would change the one connection for every client after this request.
_SESSION_STATE = re.compile(r"^\s*(SET|USE)\b", re.I)
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.I)
_CODE = re.compile(r"Code: (\d+)\.")
_READONLY = 164
_UNKNOWN_SETTING = 115


class StatementError(Exception):
    """A statement ClickHouse refused: its message, and the code it gave (or ours)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "lz4":
        import lz4.frame  # clickhouse-connect depends on it

        return lz4.frame.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(body)
    raise StatementError(f"Code: 36. DB::Exception: Unknown Content-Encoding {encoding!r}", 36)


class Engine:
    """One chDB connection on ``path``, run one statement at a time."""

    def __init__(self, path: str | Path, *, lazy: bool = False) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._conn: Any = None
        self._lock = threading.Lock()
        if not lazy:
            self._connect()
        self._database = "default"
        self._applied: dict[str, str] = {}  # settings SET on the connection now

    def _connect(self) -> Any:
        """The connection, opened now if it is not yet (a lazy engine opens it on its
        first statement: the store may still be held by another process at start)."""
        if self._conn is None:
            import chdb

            try:
                self._conn = chdb.connect(self.path)
            except Exception as exc:  # chDB raises several types; all mean "not now"
                raise StatementError(
                    f"Code: 1000. DB::Exception: cannot open the store yet: {exc}", 1000
                ) from None
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    def execute(
        self,
        sql: str,
        *,
        fmt: str = "TabSeparated",
        database: str = "default",
        settings: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """Run one statement; its output in ``fmt`` (unless it names its own FORMAT) and
        ClickHouse's summary of it. ``data`` is the input of an ``INSERT ... FORMAT X``."""
        settings = dict(settings or {})
        for name in settings:
            if not _IDENTIFIER.match(name):
                raise StatementError(
                    f"Code: {_UNKNOWN_SETTING}. DB::Exception: Unknown setting {name!r}",
                    _UNKNOWN_SETTING,
                )
        if not _IDENTIFIER.match(database):
            raise StatementError(
                f"Code: 81. DB::Exception: Database {database!r} does not exist", 81
            )
        readonly = settings.pop("readonly", "0") not in ("0", "")
        if _SESSION_STATE.match(sql):
            raise StatementError(
                "Code: 48. DB::Exception: SET and USE would outlive this request here: pass "
                "settings and the database as URL parameters (clickhouse-connect does)",
                48,
            )
        tmp: str | None = None
        if data is not None:
            match = _INSERT_DATA.match(sql)
            if not match:
                raise StatementError(
                    "Code: 62. DB::Exception: data in the body needs an INSERT INTO ... FORMAT X "
                    "in the query parameter",
                    62,
                )
            if readonly:
                raise self._refused_readonly()
            with tempfile.NamedTemporaryFile(prefix="vigil-insert-", delete=False) as handle:
                handle.write(data)
            tmp = handle.name
            sql = f"INSERT INTO {match['target']} FROM INFILE {_quote(tmp)} FORMAT {match['fmt']}"
        elif readonly:
            if not _READING.match(sql):
                raise self._refused_readonly()
            sql = self._with_settings_clause(sql, {"readonly": "1"})
        try:
            with self._lock:
                self._connect()
                self._use(database)
                self._sync_settings(settings)
                try:
                    result = self._conn.query(sql, fmt, params=params or {})
                except Exception as exc:  # chDB raises ChdbError or RuntimeError
                    raise self._error(exc) from None
                body = result.bytes()
                summary = {
                    "read_rows": str(result.rows_read()),
                    "read_bytes": str(result.bytes_read()),
                    "written_rows": str(result.rows_written()),
                    "written_bytes": str(result.bytes_written()),
                    "elapsed_ns": str(int(result.elapsed() * 1e9)),
                }
                return body, summary
        finally:
            if tmp:
                os.unlink(tmp)

    # -- inside the lock ---------------------------------------------------------------
    def _use(self, database: str) -> None:
        if database != self._database:
            try:
                self._conn.query(f"USE {database}", "TabSeparated")
            except Exception as exc:
                raise self._error(exc) from None
            self._database = database

    def _sync_settings(self, wanted: dict[str, str]) -> None:
        """Make the connection's settings those of this request: SET what differs, back
        to DEFAULT what an earlier request set and this one does not."""
        for name in [n for n in self._applied if n not in wanted]:
            self._conn.query(f"SET {name} = DEFAULT", "TabSeparated")
            del self._applied[name]
        for name, value in wanted.items():
            if self._applied.get(name) == value:
                continue
            try:
                self._conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")
            except Exception as exc:
                raise self._error(exc) from None
            self._applied[name] = value

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _with_settings_clause(sql: str, settings: dict[str, str]) -> str:
        extra = ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items())
        fmt = _TRAILING_FORMAT.search(sql)
        head, tail = (sql[: fmt.start()], sql[fmt.start() :]) if fmt else (sql.rstrip("; \n"), "")
        # A SETTINGS clause of the statement itself comes after its last parenthesis (one
        # inside a subquery does not count).
        top = head[head.rfind(")") + 1 :]
        # (``system.settings`` is a table, not the clause: the keyword is followed by a
        # setting and "=", and no dot comes before it.)
        clause = re.search(r"(?<![.\w`\"])SETTINGS\s+\w+\s*=", top, re.I)
        joiner = ", " if clause else " SETTINGS "
        return f"{head}{joiner}{extra}{tail}"

    @staticmethod
    def _refused_readonly() -> StatementError:
        return StatementError(
            f"Code: {_READONLY}. DB::Exception: Cannot execute query in readonly mode. (READONLY)",
            _READONLY,
        )

    @staticmethod
    def _error(exc: Exception) -> StatementError:
        text = str(exc)
        start = text.find("Code: ")
        message = text[start:].strip() if start >= 0 else text.strip()
        code = _CODE.search(message)
        return StatementError(message, int(code[1]) if code else 1000)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: with Nagle's algorithm the body waited for
        # the client's delayed ACK, about 40 ms a statement (bench.chserver: history queries
        # 7-8 times slower than in-process before this, ingest unaffected).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._serve(self._read_chunked())  # how clickhouse-connect streams an insert
            return
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length else b"")

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk

    def _serve(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/ping":
            self._reply(200, b"Ok.\n", {})
            return
        if url.path not in ("", "/"):
            self._reply(404, b"Code: 1000. DB::Exception: There is no handler for this path\n", {})
            return
        if not self._authorized():
            self._reply(
                401,
                b"Code: 516. DB::Exception: default: Authentication failed: password is "
                b"incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n",
                {"X-ClickHouse-Exception-Code": "516"},
            )
            return
        args = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = _decompress(body, self.headers.get("Content-Encoding", ""))
            query = args.get("query", "")
            data: bytes | None = None
            head = None if query else _INSERT_HEAD.match(body[:65536])
            if query and body and _INSERT_DATA.match(query):
                sql, data = query, body
            elif head:
                sql, data = head[0].decode().strip(), body[head.end() :]
            else:
                sql = "\n".join(p for p in (query, body.decode()) if p)
            if not sql.strip():
                raise StatementError("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", 62)
            params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
            settings = {
                k: v for k, v in args.items() if k not in TRANSPORT and not k.startswith("param_")
            }
            settings.update(self.server.forced)  # a request cannot lift them
            output, summary = self.server.engine.execute(
                sql,
                fmt=args.get("default_format") or "TabSeparated",
                database=args.get("database") or "default",
                settings=settings,
                params=params,
                data=data,
            )
        except StatementError as exc:
            status = 400 if exc.code in (62, _UNKNOWN_SETTING) else 500
            self._reply(
                status,
                (str(exc).rstrip("\n") + "\n").encode(),
                {"X-ClickHouse-Exception-Code": str(exc.code)},
            )
            return
        except (UnicodeDecodeError, OSError, RuntimeError) as exc:
            self._reply(500, f"Code: 1000. DB::Exception: {exc}\n".encode(), {})
            return
        headers = {
            "X-ClickHouse-Summary": json.dumps(summary),
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Server-Display-Name": "vigil-chserver",
        }
        if "query_id" in args:
            headers["X-ClickHouse-Query-Id"] = args["query_id"]
        self._reply(200, output, headers)

    def _authorized(self) -> bool:
        password = self.server.password
        if not password:
            return True
        given = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if given is None and auth.startswith("Basic "):
            try:
                given = base64.b64decode(auth[6:]).decode().partition(":")[2]
            except ValueError:
                given = None
        return given is not None and hmac.compare_digest(given.encode(), password.encode())

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        engine: Engine,
        password: str,
        forced: dict[str, str] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.password = password
        self.forced = dict(forced or {})


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8123,
    password: str = "",
    *,
    forced: dict[str, str] | None = None,
    lazy: bool = False,
) -> _Server:
    """A server on ``host:port`` (0: any free port) for the chDB data at ``path``; call
    ``serve_forever()`` on it, ``shutdown()`` and ``engine.close()`` to stop. ``forced``:
    settings every statement runs with, whatever a request asks (``readonly=1`` and the
    limits of the worker's read-only SQL); ``lazy``: open the store on the first
    statement."""
    return _Server((host, port), Engine(path, lazy=lazy), password, forced)


def read_only(path: str | Path, host: str, port: int, password: str, **limits: Any) -> _Server:
    """The worker's SQL on its own store: read-only, within ``limits`` (settings such as
    ``max_execution_time`` and ``max_result_rows``), with ``password`` (the API token;
    empty serves a loopback ``host`` only), answering on a thread of its own."""
    if not password and not _loopback(host):
        raise ValueError(f"refusing to serve SQL on {host} without a token (VIGIL_API_TOKEN)")
    forced = {"readonly": "1", **{k: str(v) for k, v in limits.items()}}
    # Opened on the first statement: the worker may be waiting for the store to free.
    server = serve(path, host, port, password, forced=forced, lazy=True)
    threading.Thread(target=server.serve_forever, name="vigil-sql", daemon=True).start()
    return server


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, settings: ChServerSettings) -> int:
    """Serve until SIGTERM or Ctrl-C; logs as the worker's (``VIGIL_LOG_FORMAT``)."""
    import logging.config

    from streams.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    path = settings.path(args.path)
    password = settings.password
    if not password and not _loopback(args.host):
        log.error("refusing to serve %s without VIGIL_CHSERVER_PASSWORD", args.host)
        return 2
    server = serve(path, args.host, args.port, password)
    port = server.server_address[1]
    if args.port_file:
        Path(args.port_file).write_text(str(port))
    log.info("chDB at %s served on http://%s:%d", path, args.host, port)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        server.engine.close()
    return 0

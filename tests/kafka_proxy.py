"""A TCP proxy in front of the embedded broker that records what Kafka clients send.

Each request's API key, version, client id and body are kept in ``requests``. With
``ssl`` the proxy terminates TLS (so what a client sends inside TLS is seen in clear);
with ``answer_sasl`` it accepts the SASL handshake itself and records the
authentication bytes that follow (the embedded broker has no SASL users), then hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
import struct
from dataclasses import dataclass

SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36
API_VERSIONS = 18


@dataclass
class Request:
    api_key: int
    version: int
    client_id: str
    body: bytes


class RecordingProxy:
    def __init__(
        self,
        upstream: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        answer_sasl: bool = False,
    ) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.ssl = ssl
        self.answer_sasl = answer_sasl
        self.requests: list[Request] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api_keys(self) -> set[int]:
        return {r.api_key for r in self.requests}

    def bodies(self, api_key: int) -> list[bytes]:
        return [r.body for r in self.requests if r.api_key == api_key]

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def back() -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()

        relay = asyncio.create_task(back())
        try:
            while True:
                head = await reader.readexactly(4)
                frame = await reader.readexactly(struct.unpack(">i", head)[0])
                key, version, correlation, n = struct.unpack(">hhih", frame[:10])
                client_id = frame[10 : 10 + max(n, 0)].decode(errors="replace")
                body = frame[10 + max(n, 0) :]
                self.requests.append(Request(key, version, client_id, body))
                if self.answer_sasl and key == SASL_HANDSHAKE:
                    (length,) = struct.unpack(">h", body[:2])
                    mechanism = body[2 : 2 + length]
                    answer = struct.pack(">ihi", correlation, 0, 1)
                    answer += struct.pack(">h", len(mechanism)) + mechanism
                    writer.write(struct.pack(">i", len(answer)) + answer)
                    await writer.drain()
                    continue
                if self.answer_sasl and key == SASL_AUTHENTICATE:
                    return  # recorded: hang up
                up_writer.write(head + frame)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl_module.SSLError):
            pass
        finally:
            relay.cancel()
            up_writer.close()
            writer.close()

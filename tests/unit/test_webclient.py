"""vigil.webclient against a real HTTP server (the stdlib's, on loopback)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vigil import webclient


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {
            "/json": (200, b'{"ok": true}'),
            "/text": (404, b"Code: 1000. There is no handler for this path\n\xff"),
        }[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_json_comes_back_parsed(server):
    assert webclient.call(f"{server}/json") == (200, {"ok": True})


def test_an_answer_that_is_not_json_comes_back_as_what_it_said(server):
    # Whatever answers at a worker's address (another server given its port, say) is
    # told in the result, bytes that are not UTF-8 included, not raised as a decode error.
    status, body = webclient.call(f"{server}/text")
    assert status == 404
    assert body == {
        "error": f"{server}/text answered 404 without JSON",
        "body": "Code: 1000. There is no handler for this path\n\ufffd",
    }


def test_nothing_listening_is_unreachable():
    from vigil.embedded import free_port

    with pytest.raises(webclient.Unreachable):
        webclient.call(f"http://127.0.0.1:{free_port()}/stats", timeout=2)

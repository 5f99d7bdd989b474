"""Shared fixtures: the real embedded broker, real worker processes, real chDB.

One Tansu broker serves the whole session; every test gets its own namespace (topics,
consumer group) and its own data directory, so tests never see each other's data.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from producers.settings import ProducerSettings
from vigil import webclient
from vigil.demo import worker_stats
from vigil.embedded import EmbeddedBroker, EmbeddedClickHouse, free_ports, spawn, stop

_counter = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as b:
        yield b


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    return f"t{os.getpid()}n{next(_counter)}"


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker, namespace: str) -> ProducerSettings:
    return ProducerSettings(
        kafka_bootstrap=broker.bootstrap,
        namespace=namespace,
        linger_ms=20,
        resource_interval_s=0,
        capture_runtime=False,
    )


def applied(stats: dict[str, Any], key: str = "offsets") -> int:
    """Messages a worker's ``/stats`` says are stored and checkpointed (``offsets``), or
    applied to its state in memory (``processed``): offsets start at 0 on a fresh topic
    and have no gaps."""
    return sum(offset + 1 for offset in stats.get(key, {}).values())


#: What :meth:`WorkerProcess.handovers` picks out of a worker's log.
_HANDOVER = re.compile(
    r"taken over|revoked|assigned|skipped|idle for|fail|retrying|crash|rebalanc|generation|"
    r"heartbeat|rejoin|commit",
    re.IGNORECASE,
)


def handovers(*workers: WorkerProcess) -> list[str]:
    """:meth:`WorkerProcess.handovers` of each of ``workers``, each line marked with its
    worker's place among them."""
    return [f"worker {i}: {line}" for i, w in enumerate(workers) for line in w.handovers()]


class WorkerProcess:
    """A ``vigil worker`` child process and its /stats endpoint."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = int(env["VIGIL_WEB_PORT"])
        self.proc = spawn([sys.executable, "-m", "vigil.cli", "worker"], env=env, log_path=log_path)

    @property
    def token(self) -> str | None:
        return self.env.get("VIGIL_API_TOKEN")

    def stats(self) -> dict[str, Any] | None:
        return worker_stats(self.port, self.token)

    def call(self, path: str, body: Any = None, method: str | None = None) -> tuple[int, Any]:
        """``(status, JSON)`` of ``path`` on this worker's API, with its token."""
        url = f"http://127.0.0.1:{self.port}{path}"
        return webclient.call(url, token=self.token, body=body, method=method, timeout=30)

    def metrics(self) -> dict[str, dict[tuple, float]]:
        """``/metrics``: sample name -> labels (sorted pairs) -> value."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.port}/metrics"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
        out: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = tuple(sorted(sample.labels.items()))
                out.setdefault(sample.name, {})[labels] = sample.value
        return out

    def state_gaps(self) -> list[str]:
        """Log lines of messages that did not follow the last one applied to the state."""
        return [line for line in self.log().splitlines() if "messages skipped" in line]

    def handovers(self) -> list[str]:
        """Log lines about partitions changing hands and what came of it: the group's
        rebalances, heartbeats and commits (Faust's and aiokafka's own lines), partitions
        assigned, revoked and taken over (with the offsets the state resumed from),
        messages skipped, partitions gone idle, failures retried and crashes: what a
        failed check of windows or offsets after a rebalance is read against."""
        return [line for line in self.log().splitlines() if _HANDOVER.search(line)]

    def wait_until(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            last = self.stats()
            if last is not None and predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out; last stats {last}\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM, then its exit code; killed (-9) if it outlasts its own bound on
        stopping (``streams.stopping``) by 10 s, or ``timeout``."""
        if timeout is None:
            from streams.stopping import within

            timeout = within(float(self.env.get("VIGIL_SHUTDOWN_SECONDS", 20))) + 10
        return stop(self.proc, timeout=timeout)

    def stuck_stopping(self) -> str | None:
        """What the worker said if it had to cut its own stopping short (where it was
        stuck, every thread's stack), or None."""
        from streams.stopping import STUCK

        log = self.log()
        at = log.find(f'"{STUCK}')
        return None if at < 0 else log[log.rfind("\n", 0, at) + 1 :]


@pytest.fixture
def worker_env(broker: EmbeddedBroker, namespace: str, tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        VIGIL_KAFKA_BOOTSTRAP=broker.bootstrap,
        VIGIL_NAMESPACE=namespace,
        VIGIL_DATA_DIR=str(tmp_path / "data"),
        VIGIL_LOG_LEVEL="info",
        VIGIL_API_TOKEN=f"test-token-{namespace}",
    )


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def _start(**overrides: str) -> WorkerProcess:
        web, sql = free_ports(2)
        ports = {"VIGIL_WEB_PORT": str(web), "VIGIL_SQL_PORT": str(sql)}
        env = {**worker_env, **ports, **overrides}
        w = WorkerProcess(env, tmp_path / f"worker{len(started)}.log")
        started.append(w)
        return w

    yield _start
    for w in started:
        w.stop()
        # Not a failure of the test (nothing is lost), but told in pytest's summary.
        if (stuck := w.stuck_stopping()) is not None:
            warnings.warn(f"{w.log_path} was stuck stopping: {stuck[:6000]}", stacklevel=1)


@pytest.fixture(scope="module")  # chDB opens one path per process at a time
def history_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """A chDB holding the generated history of ``tests.history_data`` (written through the
    processor and the real writer), as a read-only store, and the history itself."""
    from sinks.queries import ReadOnly
    from tests.history_data import generate, store_history

    data_dir = tmp_path_factory.mktemp("history")
    history = generate(now_ms=int(time.time() // 60 * 60_000))
    store_history(history, data_dir)
    with open_store(data_dir) as client:
        yield ReadOnly(client, "vigil"), history


@pytest.fixture(scope="session")
def clickhouse_js(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Node.js with the official ``@clickhouse/client`` (installed on first use). Without
    them the tests that use it fail in CI (``CI`` set) and are skipped elsewhere."""
    from tests.node import find_or_install

    found = find_or_install(tmp_path_factory.mktemp("npm"))
    if isinstance(found, str):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs the JavaScript client: {found}", pytrace=False)
        warnings.warn(found, stacklevel=1)
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    """Debian's Chromium (installed on first use, as root). Without one the browser tests
    fail in CI (``CI`` set: a suite that skips them proves nothing about the dashboard)
    and are skipped elsewhere, with the reason in the summary and a warning."""
    from tests.browser import NAMES, find_or_install

    found = find_or_install()
    if found is None:
        reason = (
            f"no Chromium: none of {', '.join(NAMES)} is on the PATH and it could not be "
            "installed; set VIGIL_CHROMIUM to a Chromium binary, or run as root on Debian"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI needs the browser tests to run: {reason}", pytrace=False)
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    return found


_HOLD = """
import sys, time
from pathlib import Path
from sinks.settings import StoreSettings
from sinks.store import open_client
client = open_client(StoreSettings(data_dir=Path(sys.argv[1])))
print("holding", flush=True)
time.sleep(600)
"""


@contextlib.contextmanager
def held_store(data_dir: Path) -> Iterator[None]:
    """Another process holds the chDB of ``data_dir`` (chDB opens a path in one process at
    a time): a worker given it cannot open its store until this ends."""
    import subprocess

    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield
    finally:
        holder.kill()
        holder.wait()


def open_store(data_dir: Path) -> contextlib.AbstractContextManager[Any]:
    """The chDB of ``data_dir`` in this process (only while no worker holds it)."""
    from sinks.settings import StoreSettings

    return _opened(StoreSettings(data_dir=data_dir))


@contextlib.contextmanager
def _opened(settings: Any) -> Iterator[Any]:
    from sinks.store import open_client

    client = open_client(settings)
    try:
        yield client
    finally:
        client.close()


class SharedStore(EmbeddedClickHouse):
    """``vigil chserver`` on a chDB directory (:class:`EmbeddedClickHouse`), with a
    client on it for the test's own checks."""

    def client(self) -> contextlib.AbstractContextManager[Any]:
        from sinks.settings import StoreSettings

        return _opened(StoreSettings(clickhouse_dsn=self.dsn))


@pytest.fixture
def shared_store(tmp_path: Path) -> Iterator[SharedStore]:
    with SharedStore(tmp_path / "shared-chdb", log_path=tmp_path / "chserver.log") as server:
        yield server


#: Debian trixie's kcat: bookworm's (librdkafka 2.0.2) cannot parse the embedded broker's
#: ApiVersions v3 response (PROTOUFLOW at 274/279); trixie's librdkafka 2.8.0 can.
KCAT_SOURCE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main"
)
KCAT_PACKAGES = ("kcat", "librdkafka1", "libyajl2", "libc6")


def _fetch_kcat(root: Path) -> None:
    """Download trixie's kcat with its librdkafka and glibc (2.38; bookworm has 2.36) from
    the Debian archive through a private apt configuration, and unpack them under
    ``root`` (nothing is installed on the system)."""
    import subprocess

    apt = root / "apt"
    for d in ("lists/partial", "cache/archives/partial", "debs"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(KCAT_SOURCE + "\n")
    options = [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/dev/null",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt / 'cache'}",
        "-oAPT::Sandbox::User=root",
    ]
    run = dict(check=True, capture_output=True, timeout=300)
    subprocess.run(["apt-get", *options, "update"], **run)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        ["apt-get", *options, "download", *KCAT_PACKAGES], cwd=apt / "debs", **run
    )
    for deb in (apt / "debs").glob("*.deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], **run)  # type: ignore[call-overload]


@pytest.fixture(scope="session")
def kcat() -> list[str]:
    """The command line that runs Debian's kcat (a Kafka client Vigil did not write):
    ``VIGIL_KCAT`` if set, else trixie's package, fetched once into ``VIGIL_TOOLS_DIR``
    and run through its own dynamic loader."""
    import subprocess

    if os.environ.get("VIGIL_KCAT"):
        return os.environ["VIGIL_KCAT"].split()
    tools = Path(os.environ.get("VIGIL_TOOLS_DIR", Path.home() / ".cache" / "vigil-tools"))
    root = tools / "kcat-trixie"
    libs = root / "usr" / "lib" / "x86_64-linux-gnu"
    command = [
        str(root / "usr" / "lib64" / "ld-linux-x86-64.so.2"),
        "--library-path",
        f"{libs}:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu",
        str(root / "usr" / "bin" / "kcat"),
    ]
    if not (root / "usr" / "bin" / "kcat").exists():
        try:
            _fetch_kcat(root)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            pytest.fail(f"Debian's kcat could not be fetched: {exc} {detail[-500:]!r}")
    return command

"""No broker or worker outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _pids_with_env(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_gone(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _pids_with_env(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_embedded_broker_dies_when_its_parent_is_sigkilled(tmp_path):
    marker = f"VIGIL_TEST_MARKER={tmp_path}"
    code = (
        "import time\nfrom vigil.embedded import EmbeddedBroker\n"
        "b = EmbeddedBroker().start()\nprint(b.proc.pid, flush=True)\ntime.sleep(120)\n"
    )
    env = dict(os.environ, VIGIL_TEST_MARKER=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    broker_pid = int(parent.stdout.readline())
    assert broker_pid in _pids_with_env(marker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_gone(marker) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_demo_runs_end_to_end_and_leaves_no_process_behind(tmp_path):
    marker = f"VIGIL_DATA_DIR={tmp_path / 'data'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_DATA_DIR"] = str(tmp_path / "data")
    out = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "demo", "--duration", "6", "--rate", "1000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "History since" in out.stdout
    for section in (
        "workflows",
        "p95 per 5 min",
        "alerts",
        "top errors",
        "vigil history",
    ):
        assert section in out.stdout
    assert "DLQ" in out.stdout
    # The last progress line carries the time it was printed (it read 0.0 s once).
    assert "[  0.0s] published" not in out.stdout
    assert _wait_gone(marker, timeout=5) == []

"""Node.js and the official ClickHouse JavaScript client (``@clickhouse/client`` from
the npm registry), for the tests that query Vigil's SQL as a JavaScript program would."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The client's version the tests install (the npm registry's, pinned).
CLIENT = "@clickhouse/client@1.23.1"


@dataclass(frozen=True)
class JsClient:
    node: str
    #: The ``node_modules`` directory holding the client (``NODE_PATH``).
    modules: Path


def _apt(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def find_or_install(root: Path) -> JsClient | str:
    """Node.js (on the PATH; as root on Debian, its ``nodejs`` and ``npm`` packages are
    installed first) with the client installed under ``root``; or why there is none."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "no node and npm on the PATH, and not root on Debian to install them"
        _apt("nodejs", "npm")
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm could not be installed"
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), CLIENT],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return f"npm install {CLIENT} failed: {done.stderr[-500:]}"
    return JsClient(node, root / "node_modules")

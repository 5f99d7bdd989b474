"""What a service runs on, captured once when its client starts: the Python version and
implementation, the platform, the host, the process id, the git revision of the code and
the versions of the installed packages (:func:`capture`). The client publishes it as one
log line named :data:`NAME`; ``vigil history runtimes`` reads it back per service.

The revision comes from ``VIGIL_REVISION`` when set (a build that ships no ``.git``),
else from the ``.git`` of the working directory or of the main script (read as files:
no ``git`` process).

>>> info = capture()
>>> {'host', 'packages', 'python', 'platform'} <= set(info)
True
>>> info["python"].count(".") == 2
True
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

#: The name of the log line that carries the runtime.
NAME = "vigil.runtime"
#: At most this many packages are listed (the log line stays far below 64 KB).
MAX_PACKAGES = 400


def capture(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The runtime of this process, as plain data."""
    env = os.environ if environ is None else environ
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "executable": sys.executable,
        "packages": packages(),
    }
    revision = env.get("VIGIL_REVISION") or git_revision(Path.cwd())
    if revision is None and sys.argv and sys.argv[0]:
        revision = git_revision(Path(sys.argv[0]).resolve().parent)
    if revision:
        info["revision"] = revision
    return info


def packages() -> dict[str, str]:
    """Installed distributions, name -> version (the first :data:`MAX_PACKAGES` by name)."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.setdefault(name.lower(), dist.version)
    return dict(sorted(found.items())[:MAX_PACKAGES])


def git_revision(start: Path) -> str | None:
    """The commit checked out in the repository holding ``start``, None outside one.

    >>> git_revision(Path("/")) is None
    True
    """
    for folder in (start, *start.parents):
        dot = folder / ".git"
        if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = dot.read_text(errors="replace").strip()
            if not text.startswith("gitdir:"):
                return None
            dot = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if dot.is_dir():
            return _head(dot)
    return None


def _head(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None  # detached: the commit itself
    ref = head.removeprefix("ref:").strip()
    common = git
    commondir = git / "commondir"  # a worktree keeps its refs in the main repository
    if commondir.is_file():
        common = (git / commondir.read_text().strip()).resolve()
    for base in (git, common):
        try:
            return (base / ref).read_text().strip()
        except OSError:
            pass
    try:
        for line in (common / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        pass
    return None

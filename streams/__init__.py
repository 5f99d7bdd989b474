"""The stream worker and its pure core.

The worker's pure core (``CORE`` in ``setup.py``: the detectors, the windows, their
aggregates and sketches) is compiled by mypyc when Vigil is installed, into extension
modules beside their sources. In a source tree (an editable
install, where the sources are edited), a build is imported only while every source of
its group is older than every build: after an edit or a checkout the sources run, all of
them, with a warning, until ``pip install -e .`` builds them again. A build of some of
them beside the sources of others would hold two versions of the same classes. A build
older than the group's library, left by a module taken out of the group, is not
imported either (its source runs, with a warning).
``VIGIL_PURE_PYTHON=1`` runs the sources always (a profile, a debugger, a comparison:
``bench/compiled.py``).

>>> set(COMPILED) <= set(builds(Path(__file__).parent))
True
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import warnings
from pathlib import Path


def extensions(folder: Path) -> dict[str, Path]:
    """Every extension module in ``folder`` (builds and the group's library): name ->
    its path; the folder listed once for each extension suffix."""
    found = {}
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        for path in folder.glob(f"*{suffix}"):
            found[path.name.removesuffix(suffix)] = path
    return found


def builds(folder: Path, found: dict[str, Path] | None = None) -> dict[str, Path]:
    """The modules in ``folder`` with a compiled build beside their source: name ->
    the build's path (of ``found``, :func:`extensions` if already listed)."""
    found = extensions(folder) if found is None else found
    return {name: path for name, path in found.items() if (folder / f"{name}.py").exists()}


def orphans(folder: Path, found: dict[str, Path] | None = None) -> list[str]:
    """The modules of ``folder``'s builds (of ``found``, :func:`extensions` if already
    listed) that are older than the group's library (``*__mypyc``): left by an earlier
    build of a group that no longer holds them (a module taken out of ``CORE``). The
    library of now has no such module: importing its build fails (``module
    'streams.core__mypyc' has no attribute 'init_streams___alerting'``, seen)."""
    found = extensions(folder) if found is None else found
    libraries = [path for name, path in found.items() if name.endswith("__mypyc")]
    if not libraries:
        return []
    newest = max(path.stat().st_mtime for path in libraries)
    built = builds(folder, found)
    return sorted(name for name, path in built.items() if path.stat().st_mtime < newest)


def stale(folder: Path, built: dict[str, Path] | None = None) -> list[str]:
    """The modules of ``folder``'s builds (``built``, if already listed) whose source
    changed after the oldest build."""
    built = builds(folder) if built is None else built
    if not built:
        return []
    oldest = min(path.stat().st_mtime for path in built.values())
    return sorted(name for name in built if (folder / f"{name}.py").stat().st_mtime > oldest)


class Sources:
    """A finder that imports the package's modules ``names`` from their sources, ahead
    of their builds."""

    def __init__(self, package: str, folder: Path, names: list[str]) -> None:
        self.sources = {f"{package}.{name}": folder / f"{name}.py" for name in names}

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        return None if source is None else importlib.util.spec_from_file_location(fullname, source)


def _compiled() -> tuple[str, ...]:
    """The modules that run compiled; a finder for the sources where they must not."""
    here = Path(__file__).resolve().parent
    listed = extensions(here)
    found = builds(here, listed)
    tree = (here.parent / "pyproject.toml").exists()  # a source tree, not an installed wheel
    left = orphans(here, listed) if tree else []
    if left:
        why = "compiled by an earlier build, not by the last one (delete those builds)"
        _from_sources(here, left, left, why)
        found = {name: path for name, path in found.items() if name not in left}
    if not found:
        return ()
    built = sorted(found)
    pure = bool(os.environ.get("VIGIL_PURE_PYTHON"))
    changed = stale(here, found) if tree else []
    if not pure and not changed:
        return tuple(built)
    why = "changed after the compiled build (pip install -e . builds them again)"
    _from_sources(here, built, [] if pure else changed, why)
    return ()


def _from_sources(here: Path, names: list[str], warned: list[str], why: str) -> None:
    """Import the modules ``names`` from their sources from now on, with a warning
    that ``warned`` (if any) ``why``."""
    if warned:
        message = f"streams: {', '.join(warned)} {why}: the sources run instead"
        warnings.warn(message, RuntimeWarning, stacklevel=4)
    sys.meta_path.insert(0, Sources(__name__, here, names))


#: The modules of the package that run compiled (none where the sources run).
COMPILED = _compiled()

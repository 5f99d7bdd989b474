"""The worker's pure core compiled to C by mypyc (mypy's compiler) when Vigil is
installed: the detector's modules and the windows' (the same scores, alerts and windows,
faster: ``bench/compiled.py`` and ``bench/worker_core.py`` measure both).
Where a module cannot be built (no C compiler), the sources run as they are;
``VIGIL_PURE_PYTHON=1`` at install builds nothing. ``streams/__init__.py`` imports a
build only while it is newer than every one of its sources."""

import os

from setuptools import setup

#: What mypyc compiles, one group (its shared library is ``streams/core__mypyc``): the
#: detectors and what they are made of, and the windows with their aggregates and
#: sketches (what every event and every closed window goes through). A class compiled
#: here cannot be subclassed by interpreted code, and its class constants are
#: ``ClassVar``s.
CORE = [
    "streams/packing.py",
    "streams/summaries.py",
    "streams/weekly.py",
    "streams/likelihood.py",
    "streams/recurrence.py",
    "streams/detection.py",
    "streams/sketch.py",
    "streams/aggregates.py",
    "streams/windows.py",
]


def extensions() -> list:
    if os.environ.get("VIGIL_PURE_PYTHON"):
        return []
    from mypyc.build import mypycify

    built = mypycify(CORE, opt_level="3", group_name="streams.core")
    for extension in built:
        extension.optional = True  # a failed compile leaves the sources in use
    return built


setup(ext_modules=extensions())

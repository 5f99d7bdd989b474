"""The detector's modules compiled to C by mypyc (mypy's compiler) when Vigil is
installed: the same scores and alerts, faster (``bench/compiled.py`` measures both).
Where a module cannot be built (no C compiler), the sources run as they are;
``VIGIL_PURE_PYTHON=1`` at install builds nothing. ``streams/__init__.py`` imports a
build only while it is newer than every one of its sources."""

import os

from setuptools import setup

#: What mypyc compiles: the detectors and what they are made of, one group (its shared
#: library is ``streams/core__mypyc``). A class compiled here cannot be subclassed by
#: interpreted code, and its class constants are ``ClassVar``s.
CORE = [
    "streams/packing.py",
    "streams/summaries.py",
    "streams/weekly.py",
    "streams/likelihood.py",
    "streams/recurrence.py",
    "streams/detection.py",
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

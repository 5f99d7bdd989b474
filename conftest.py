"""The doctests of the compiled modules (``streams.COMPILED``), read from their sources.

mypyc keeps no docstrings, and pytest's doctest collector imports the build (which is
not the file it collects: an import mismatch). Each such module's doctests are read
from its source, loaded under a name of its own beside the build, and run in the
build's namespace: the examples exercise the compiled classes and functions, as the
worker runs them (a source's class made from a compiled one would be an interpreted
subclass of a compiled class, which mypyc refuses).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Generator, Iterable
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

import streams

_COMPILED = {Path(streams.__file__).resolve().parent / f"{name}.py" for name in streams.COMPILED}


class SourceDoctests(DoctestModule):
    def _getobj(self) -> ModuleType:
        name = f"_source_of_{self.path.stem}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # a dataclass looks its module up there
        spec.loader.exec_module(module)
        return module

    def collect(self) -> Iterable[DoctestItem]:
        build = vars(importlib.import_module(f"streams.{self.path.stem}"))
        for item in super().collect():
            assert isinstance(item, DoctestItem) and item.dtest is not None
            item.dtest.globs = dict(build)
            yield item


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(
    file_path: Path, parent: pytest.Collector
) -> Generator[None, list[pytest.Collector], list[pytest.Collector]]:
    collected = yield
    if file_path.resolve() not in _COMPILED:
        return collected
    # Named on the command line, the file is also a test module: it holds none, and its
    # import is the build's.
    return [
        SourceDoctests.from_parent(parent, path=file_path)
        for c in collected
        if type(c) is DoctestModule
    ]

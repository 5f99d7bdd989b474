"""The worker's core compiled by mypyc (setup.py): built where CI installs Vigil, the
same scores, alerts and windows as its sources, and never a build older than its source."""

from __future__ import annotations

import ast
import importlib.machinery
import os
from pathlib import Path

import pytest

import streams
from bench import compiled, synthetic

ROOT = Path(__file__).resolve().parents[2]


def _core() -> set[str]:
    """The module names of ``CORE`` in setup.py (read, not run: running it builds)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "CORE" for t in targets):
                assert node.value is not None
                return {Path(p).stem for p in ast.literal_eval(node.value)}
    raise AssertionError("setup.py has no CORE")


def test_ci_runs_every_module_of_the_core_compiled():
    """A build that failed falls back to the sources without a word at install (the
    extensions are optional): CI must not pass on the slow path unseen."""
    if not os.environ.get("CI"):
        pytest.skip("only where CI installs Vigil (a local build may be stale)")
    assert set(streams.COMPILED) == _core()


def test_the_build_scores_and_alerts_as_its_sources(tmp_path):
    synthetic.write(tmp_path, 3)
    shapes = ("bursty", "demand", "scheduled", "sparse", "traffic", "drift", "subtle")
    paths = [tmp_path / "data" / shape / f"{shape}_0.csv" for shape in shapes]
    built = compiled.measure(paths, sources=False)
    plain = compiled.measure(paths, sources=True)
    assert not compiled.is_build(plain["module"])
    if os.environ.get("CI") or streams.COMPILED:
        assert compiled.is_build(built["module"])
    assert built["rows"] == plain["rows"] == sum(len(p.read_text().splitlines()) - 1 for p in paths)
    assert built["alerts"] == plain["alerts"] > 0
    assert built["digest"] == plain["digest"]


def test_the_build_makes_the_windows_scores_and_checkpoint_of_its_sources(tmp_path):
    """The windows, their aggregates and sketches, and the detectors the default rules
    score closed windows with: every window's line, score, alert and the checkpoint."""
    envelopes = tmp_path / "envelopes"
    compiled.write_envelopes(envelopes, 20_000, 2_000)
    built = compiled.measure([envelopes], sources=False, workload="processor")
    plain = compiled.measure([envelopes], sources=True, workload="processor")
    assert not compiled.is_build(plain["module"])
    if os.environ.get("CI") or streams.COMPILED:
        assert compiled.is_build(built["module"])
    assert built["rows"] == plain["rows"] == 20_000
    assert built["windows"] == plain["windows"] > 20_000  # 2,000 series in 7 windows each
    assert built["scores"] == plain["scores"] > 1_000
    assert built["digest"] == plain["digest"]


def _touch(path: Path, mtime: float) -> Path:
    path.write_text("")
    os.utime(path, (mtime, mtime))
    return path


def test_a_build_older_than_any_source_of_its_group_is_stale(tmp_path):
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for name in ("a", "b"):
        _touch(tmp_path / f"{name}.py", 100.0)
        _touch(tmp_path / f"{name}{suffix}", 200.0)
    _touch(tmp_path / f"core__mypyc{suffix}", 50.0)  # the group's library: no source
    _touch(tmp_path / "c.py", 300.0)  # a module that is not built
    assert set(streams.builds(tmp_path)) == {"a", "b"}
    assert streams.stale(tmp_path) == []
    _touch(tmp_path / "b.py", 250.0)  # edited after the build
    assert streams.stale(tmp_path) == ["b"]
    _touch(tmp_path / f"b{suffix}", 300.0)  # b built again alone: a's build is older
    assert streams.stale(tmp_path) == ["b"]


def test_a_build_older_than_its_group_library_is_an_orphan(tmp_path):
    """A module taken out of the group leaves its build behind, which the group's new
    library cannot import."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    assert streams.orphans(tmp_path) == []
    for name in ("a", "b"):
        _touch(tmp_path / f"{name}.py", 100.0)
    _touch(tmp_path / f"b{suffix}", 150.0)  # built by the group of before
    _touch(tmp_path / f"core__mypyc{suffix}", 200.0)  # the group of now
    _touch(tmp_path / f"a{suffix}", 201.0)
    assert streams.orphans(tmp_path) == ["b"]
    assert set(streams.builds(tmp_path)) == {"a", "b"}
    _touch(tmp_path / f"b{suffix}", 202.0)  # in the group again
    assert streams.orphans(tmp_path) == []

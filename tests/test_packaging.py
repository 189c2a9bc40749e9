"""What a user installs: the library alone, built without a warning, and a command that says
its version."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parent.parent
# The build backend's own hooks, called as pip and `python -m build` call them; with
# `-W error` any warning it gives (a deprecated field, an editable-install caveat) fails.
BUILD = (
    "import sys\n"
    "from setuptools import build_meta\n"
    "print(getattr(build_meta, sys.argv[1])(sys.argv[2]))\n"
)


def clean_copy(tmp_path: Path) -> Path:
    """The checkout's packaging inputs, without build/ or egg-info left over from a build."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for package in ("framework", "consumers", "tests", "examples"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("*.pyc", "*.db")
        )
    return source


def build(source: Path, hook: str, into: Path) -> tuple[Path, str]:
    """Run one build hook with warnings as errors; the file it made and what it printed."""
    into.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", BUILD, hook, str(into)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 0 == result.returncode, result.stderr
    return into / result.stdout.strip().splitlines()[-1], result.stderr


def test_the_wheel_holds_the_framework_only(tmp_path: Path) -> None:
    """The shipped demo application (consumers/) and the tests stay out of the wheel."""
    wheel, _ = build(clean_copy(tmp_path), "build_wheel", tmp_path / "dist")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"framework", f"bulkworker-{metadata.version('bulkworker')}.dist-info"} == tops


@pytest.mark.parametrize("hook", ["build_wheel", "build_sdist", "build_editable"])
def test_building_gives_no_warning(tmp_path: Path, hook: str) -> None:
    """pip install -e ., pip wheel and python -m build run without a single warning."""
    built, errors = build(clean_copy(tmp_path), hook, tmp_path / "dist")
    assert built.exists()
    assert "Warning" not in errors, errors


def test_the_license_travels_with_the_distribution(tmp_path: Path) -> None:
    """The sdist carries LICENSE and the metadata names the license by its SPDX id."""
    sdist, _ = build(clean_copy(tmp_path), "build_sdist", tmp_path / "dist")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[-1] for name in archive.getnames()}
        info = archive.extractfile(next(n for n in archive.getnames() if n.endswith("PKG-INFO")))
        assert info is not None
        fields = info.read().decode()
    assert "LICENSE" in names
    assert "License-Expression: MIT" in fields.splitlines()


def test_version_is_printed() -> None:
    """`bulkworker --version` names the installed version."""
    result = run_cli("--version")
    assert 0 == result.returncode, result.stderr
    assert f"bulkworker {metadata.version('bulkworker')}\n" == result.stdout

"""What a user installs: the library alone, and a command that says its version."""

import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from tests.test_cli import run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_the_framework_only(tmp_path: Path) -> None:
    """The shipped demo application (consumers/) stays in the repository, out of the wheel."""
    source = tmp_path / "source"  # a clean copy: no build/ left over from an earlier build
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("framework", "consumers"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("bulkworker-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"framework", f"bulkworker-{metadata.version('bulkworker')}.dist-info"} == tops


def test_version_is_printed() -> None:
    """`bulkworker --version` names the installed version."""
    result = run_cli("--version")
    assert 0 == result.returncode, result.stderr
    assert f"bulkworker {metadata.version('bulkworker')}\n" == result.stdout

"""A new project's own pytest runs consumer tests with the shipped plugin: no setup, no warning."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TEST_FILE = """
from framework import BulkConsumer


class Echo(BulkConsumer):
    queues = ["echo"]

    async def handle(self, messages):
        for message in messages:
            message.ack()


async def test_echo(consumer_harness):
    async with consumer_harness(Echo) as harness:
        await harness.publish({"a": 1})
        await harness.flush()
    assert [{"a": 1}] == harness.acked
"""


def run_pytest(project: Path, config: str | None) -> subprocess.CompletedProcess[str]:
    (project / "test_echo.py").write_text(TEST_FILE)
    if config is not None:
        (project / "pyproject.toml").write_text(config)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "config",
    [None, '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n'],
    ids=["no-configuration", "warnings-are-errors"],
)
def test_a_fresh_project_runs_async_tests_without_warnings(tmp_path: Path, config: str) -> None:
    """No asyncio_mode, no loop scope set: the async test runs and nothing warns."""
    result = run_pytest(tmp_path, config)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "warning" not in (result.stdout + result.stderr).lower()


def test_a_project_that_chose_strict_mode_keeps_it(tmp_path: Path) -> None:
    """asyncio_mode = strict in the project wins: an unmarked async test is not run by asyncio."""
    config = (
        '[tool.pytest.ini_options]\nasyncio_mode = "strict"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
    )
    result = run_pytest(tmp_path, config)
    assert 0 != result.returncode
    assert "async def functions are not natively supported" in result.stdout

"""Every code block in README.md and docs/ runs, so the docs cannot rot."""

import inspect
import os
import re
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import containers

from framework import BulkConsumer, Container
from framework.consumer import SETTING_NAMES, is_runnable
from framework.injection import build_consumer
from framework.settings import SETTINGS
from tests.broker import AMQP_URL, Broker

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# Shell lines that are not run here, and why.
NOT_RUN = {
    "make ": "the Makefile targets are this suite's own harness (make test runs it)",
    "sudo apt-get": "installing RabbitMQ: it is already running for the suite",
    "docker run": "installing RabbitMQ: it is already running for the suite",
    "python examples/": "run and checked by tests/test_examples.py",
}


def blocks(language: str) -> list[Any]:
    found = []
    for document in DOCUMENTS:
        for number, match in enumerate(BLOCK.finditer(document.read_text())):
            if match.group(1) == language:
                found.append(pytest.param(match.group(2), id=f"{document.name}-{number}"))
    return found


def shell_lines() -> list[Any]:
    lines = []
    for block in blocks("bash"):
        for line in block.values[0].splitlines():
            command = line.split("#")[0].strip()
            if command:
                lines.append(pytest.param(command, id=command[:60]))
    return lines


@pytest.mark.parametrize("source", blocks("python"))
async def test_python_block_runs(source: str) -> None:
    """Each Python block executes, and its consumers resolve their services."""
    module = types.ModuleType("docs_block")
    sys.modules[module.__name__] = module
    try:
        exec(compile(source, "docs_block", "exec"), module.__dict__)
        await check_consumers(module)
    finally:
        del sys.modules[module.__name__]


async def check_consumers(module: types.ModuleType) -> None:
    members = list(vars(module).values())
    consumers = [
        m for m in members if inspect.isclass(m) and issubclass(m, BulkConsumer) and is_runnable(m)
    ]
    container_classes = [
        m
        for m in members
        if inspect.isclass(m)
        and issubclass(m, containers.DeclarativeContainer)
        and m is not Container
    ]
    container = container_classes[-1]() if container_classes else Container()
    for consumer in consumers:
        instance, _ = await build_consumer(consumer, container)
        assert isinstance(instance, consumer)


@pytest.mark.parametrize("command", shell_lines())
async def test_shell_line_runs(command: str, broker: Broker, tmp_path: Path) -> None:
    """Each shell command shown works; the few that are not run here say why."""
    reasons = [reason for prefix, reason in NOT_RUN.items() if command.startswith(prefix)]
    if reasons:
        assert reasons[0]
        return
    words = command.split()
    assert "bulkworker" == words[0], f"no rule to run {command!r} in the docs test"
    env = {**os.environ, "BULKWORKER_AMQP_URL": AMQP_URL, "ITEMS_DB": str(tmp_path / "i.db")}
    argv = [sys.executable, "-m", "framework.cli", *words[1:]]
    if words[1] != "run":
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert 0 == result.returncode, result.stderr
        return
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if b"consumer started" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert 0 == process.returncode, errors
    assert b"" == errors


def test_readme_settings_tables_name_every_setting() -> None:
    """Every consumer attribute and every environment variable has a row in the README."""
    readme = (ROOT / "README.md").read_text()
    for name in SETTING_NAMES:
        assert f"| `{name}` |" in readme
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in readme

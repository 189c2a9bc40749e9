"""Every code block in README.md and docs/ runs, so the docs cannot rot.

Python blocks are executed; the consumers they define must resolve their
services against the container they define; their `test_*` functions are run.
Shell lines that call `bulkworker` are run against the suite's private RabbitMQ
node, so that publishing and replaying touch nothing shared.
"""

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
from framework.config.deployment import SETTINGS, deployment_table
from framework.core.consumer import SETTING_NAMES, is_runnable, settings_table
from framework.testing import ConsumerHarness
from framework.wiring.injection import build_consumer
from tests.broker import Broker
from tests.postgres import postgres_dsn
from tests.private_broker import PrivateBroker
from tests.test_cli import kill_if_running

__all__ = ["postgres_dsn"]
ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)

# Shell lines that are not run here, and why.
NOT_RUN = {
    "make ": "the Makefile targets are this suite's own harness (make test runs it)",
    "sudo apt-get": "installing RabbitMQ: it is already running for the suite",
    "docker run": "installing RabbitMQ: it is already running for the suite",
    "pip install": "installing bulkworker: the suite runs from the installed checkout",
    "python examples/": "run and checked by tests/test_examples.py",
    "rabbitmq-plugins enable": "enabling a broker plugin: the tests that need it enable it",
}


def blocks(language: str) -> list[Any]:
    found = []
    for document in DOCUMENTS:
        for number, match in enumerate(BLOCK.finditer(document.read_text())):
            if match.group(1) == language:
                found.append(pytest.param(match.group(2), id=f"{document.name}-{number}"))
    return found


# Documents whose commands run in the reader's own project: tests/test_tutorial.py
# builds that project from the document's titled blocks and runs them there.
PROJECT_DOCUMENTS = ("getting-started.md",)


def shell_lines() -> list[Any]:
    commands: dict[str, None] = {}
    for block in blocks("bash"):
        if block.id.rsplit("-", 1)[0] in PROJECT_DOCUMENTS:
            continue
        for line in block.values[0].splitlines():
            command = line.split("#")[0].strip()
            if command:
                commands[command] = None
    return [pytest.param(command, id=command[:70]) for command in commands]


def python_documents() -> list[Any]:
    return [
        pytest.param(document, id=document.name)
        for document in DOCUMENTS
        if any(m.group(1) == "python" for m in BLOCK.finditer(document.read_text()))
    ]


@pytest.mark.parametrize("document", python_documents())
async def test_python_blocks_run(
    document: Path, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each document's Python blocks run in order, sharing names as a reader would read them;
    the consumers they define resolve their services, and their tests pass."""
    # The PostgreSQL examples write to a database of this module's own.
    monkeypatch.setenv("BULKWORKER_POSTGRES_DSN", postgres_dsn)
    module = types.ModuleType(f"docs_{document.stem.replace('-', '_')}")
    sys.modules[module.__name__] = module
    checked: set[type] = set()
    try:
        for match in BLOCK.finditer(document.read_text()):
            if match.group(1) != "python":
                continue
            exec(compile(match.group(2), str(document), "exec"), module.__dict__)
            await check_consumers(module, checked)
            await run_tests(module)
    finally:
        del sys.modules[module.__name__]


async def check_consumers(module: types.ModuleType, checked: set[type]) -> None:
    """Consumers new in this block resolve against the latest container defined so far."""
    members = list(vars(module).values())
    consumers = [
        m
        for m in members
        if inspect.isclass(m)
        and issubclass(m, BulkConsumer)
        and is_runnable(m)
        and m not in checked
    ]
    checked.update(consumers)
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


async def run_tests(module: types.ModuleType) -> None:
    for name, function in list(vars(module).items()):
        if not (name.startswith("test_") and inspect.isfunction(function)):
            continue
        del module.__dict__[name]  # each test runs once, after the block that defines it
        fixtures = {"consumer_harness": ConsumerHarness}
        arguments = {p: fixtures[p] for p in inspect.signature(function).parameters}
        result = function(**arguments)
        if inspect.isawaitable(result):
            await result


@pytest.mark.parametrize("command", shell_lines())
async def test_shell_line_runs(command: str, private_broker: PrivateBroker, tmp_path: Path) -> None:
    """Each shell command shown works; the few that are not run here say why."""
    reasons = [reason for prefix, reason in NOT_RUN.items() if command.startswith(prefix)]
    if reasons:
        pytest.skip(reasons[0])
    words = command.split()
    assert "bulkworker" == words[0], f"no rule to run {command!r} in the docs test"
    broker = await Broker.connect(private_broker.url)
    for queue in ("items", "items.dlq"):
        await broker.declare(queue)
    await broker.connection.close()
    env = {
        **os.environ,
        "BULKWORKER_AMQP_URL": private_broker.url,
        "ITEMS_DB": str(tmp_path / "i.db"),
        "ORDERS_DATABASE": str(tmp_path / "orders.db"),
    }
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
        kill_if_running(process)
    assert 0 == process.returncode, errors
    assert b"" == errors


def test_settings_tables_name_every_setting() -> None:
    """Every consumer attribute and environment variable has a row in README and reference."""
    readme = (ROOT / "README.md").read_text()
    reference = (ROOT / "docs" / "configuration.md").read_text()
    for name in SETTING_NAMES:
        assert f"| `{name}` |" in readme
        assert f"| `{name}` |" in reference
    for setting in SETTINGS:
        assert f"| `{setting.env}` |" in readme
        assert f"| `{setting.env}` | `{setting.key}` |" in reference


def test_deployment_settings_table_derives_from_the_definition() -> None:
    """The reference lists the environment variables exactly as the code defines them.

    Regenerate the rows with `python -c "from framework.config.deployment import
    deployment_table as t; print(t())"`.
    """
    assert deployment_table() in (ROOT / "docs" / "configuration.md").read_text()


def test_consumer_settings_tables_derive_from_the_definition() -> None:
    """README and the reference show the consumer settings table exactly as the code defines it.

    Regenerate it with `python -c "from framework.core.consumer import settings_table as t;
    print(t())"`.
    """
    table = settings_table()
    assert table in (ROOT / "README.md").read_text()
    assert table in (ROOT / "docs" / "configuration.md").read_text()

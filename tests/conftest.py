"""Fixtures: a real broker connection, a fresh container per test, a cuttable proxy."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from framework import Container
from framework.testing import FakeChannel, FakeClock, FakePublisher, RecordingLog
from tests.broker import AMQP_URL, Broker
from tests.private_broker import PrivateBroker, rabbitmq_installed
from tests.proxy import TcpProxy


def child_processes() -> dict[int, str]:
    """This process's children, running or exited and never waited for, by pid (Linux)."""
    found = {}
    for listing in Path("/proc/self/task").glob("*/children"):
        for pid in listing.read_text().split():
            with contextlib.suppress(OSError):
                found[int(pid)] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    return {pid: command.decode(errors="replace").strip() for pid, command in found.items()}


UNGROUPED = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` every test marked ``xdist_group`` must carry its group.

    pytest-xdist groups by a suffix on the node id; when a pytest release stops
    honouring it, grouped tests silently spread over several processes, where
    they collide on what they share (a cluster, fixed queue names).
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is not None:
            group = mark.args[0] if mark.args else mark.kwargs["name"]
            item.stash[UNGROUPED] = not item.nodeid.endswith(f"@{group}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.stash.get(UNGROUPED, False):
        pytest.fail(
            "--dist loadgroup does not group with this pytest and pytest-xdist: this test "
            "would run beside the others of its xdist_group (see the pytest pin in "
            "pyproject.toml)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """A test that leaves a process running, or never waits for one, fails itself: left
    over, it would warn ("subprocess ... is still running") in whichever test came later."""
    before = set(child_processes())
    yield
    left = {pid: command for pid, command in child_processes().items() if pid not in before}
    assert {} == left, "left running or never waited for"


@pytest.fixture(autouse=True)
def nothing_left_open() -> Iterator[None]:
    """A test that leaves a socket or transport unclosed fails itself: collected later, its
    ResourceWarning would fail whichever test happened to run when the collector did."""
    yield
    gc.collect()


@pytest.fixture
async def broker() -> AsyncIterator[Broker]:
    broker = await Broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


def make_container(url: str = AMQP_URL, container_class: type = Container) -> Container:
    """A fresh container per test: providers must not outlive their event loop."""
    container = container_class()
    container.config.amqp_url.from_value(url)
    container.config.log_level.from_value("DEBUG")
    return container


def recorded(url: str = AMQP_URL, **config: Any) -> tuple[Container, RecordingLog]:
    """A fresh container logging into a RecordingLog, with ``config`` set."""
    container = make_container(url)
    for key, value in config.items():
        getattr(container.config, key).from_value(value)
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    return container, log


@pytest.fixture
def container() -> Container:
    return make_container()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
async def private(private_broker: PrivateBroker) -> AsyncIterator[Broker]:
    """A test connection to the private node; the node is running again afterwards."""
    broker = await Broker.connect(private_broker.url)
    try:
        yield broker
    finally:
        await asyncio.to_thread(private_broker.start_app)
        private_broker.memory_alarm(False)
        with contextlib.suppress(Exception):
            await broker.connection.close()
        # The test's own connection may have died with the broker: clean up on a new one.
        cleanup = await Broker.connect(private_broker.url)
        cleanup.names = broker.names
        await cleanup.close()


@pytest.fixture(scope="session")
def private_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of the suite's own, for faults that stop or alarm a broker."""
    if not rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed here: broker-restart tests need it")
    node = PrivateBroker()
    node.start()
    try:
        yield node
    finally:
        node.close()


# The engine's fakes, for tests of the pure core.
@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()

"""Fixtures: a real broker connection, a fresh container per test, a cuttable proxy."""

from collections.abc import AsyncIterator, Iterator

import pytest

from framework import Container
from tests.broker import AMQP_URL, Broker
from tests.private_broker import PrivateBroker, rabbitmq_installed
from tests.proxy import TcpProxy


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

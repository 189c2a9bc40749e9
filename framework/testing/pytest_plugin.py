"""pytest fixtures for testing consumers; loaded automatically once bulkworker is installed.

``consumer_harness`` builds a :class:`framework.testing.ConsumerHarness`. It runs
in memory unless ``--bulkworker-broker URL`` (or ``BULKWORKER_HARNESS_BROKER``)
names a RabbitMQ: then the same tests run against it.
"""

import os
from collections.abc import Callable
from typing import Any

import pytest

from framework.testing.harness import ConsumerHarness

BROKER_OPTION = "--bulkworker-broker"
BROKER_VARIABLE = "BULKWORKER_HARNESS_BROKER"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        BROKER_OPTION,
        default=None,
        metavar="URL",
        help="run consumer_harness tests against this RabbitMQ instead of in memory",
    )


@pytest.fixture
def consumer_harness(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A factory: ``async with consumer_harness(MyConsumer, overrides={...}) as h: ...``."""
    broker = request.config.getoption(BROKER_OPTION) or os.environ.get(BROKER_VARIABLE) or False

    def make(consumer: Any, **options: Any) -> ConsumerHarness:
        options.setdefault("broker", broker)
        return ConsumerHarness(consumer, **options)

    return make

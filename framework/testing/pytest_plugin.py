"""pytest fixtures for testing consumers; loaded automatically once bulkworker is installed.

``consumer_harness`` builds a :class:`framework.testing.ConsumerHarness`. It runs
in memory unless ``--bulkworker-broker URL`` (or ``BULKWORKER_HARNESS_BROKER``)
names a RabbitMQ: then the same tests run against it.

With pytest-asyncio installed, a project that configures neither gets
``asyncio_mode = auto`` (every ``async def`` test runs, no marker needed) and
no warning about the unset ``asyncio_default_fixture_loop_scope``. A project
that sets either option in its pytest configuration or on the command line
keeps its own choice.
"""

import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from framework.testing.harness import ConsumerHarness

BROKER_OPTION = "--bulkworker-broker"
BROKER_VARIABLE = "BULKWORKER_HARNESS_BROKER"
ASYNCIO_MODE = "asyncio_mode"
LOOP_SCOPE = "asyncio_default_fixture_loop_scope"
LOOP_SCOPE_UNSET = f'The configuration option "{LOOP_SCOPE}" is unset'
QUIET_LOOP_SCOPE = pytest.StashKey[bool]()


def sets_itself(inipath: Path | None, args: list[str], option: str) -> bool:
    """Whether the project's configuration file or the command line sets ``option``."""
    if any(option in arg or option.replace("_", "-") in arg for arg in args):
        return True
    return inipath is not None and option in inipath.read_text(errors="replace")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """Run ``async def`` tests in auto mode unless the project chose a mode itself."""
    if not early_config.pluginmanager.hasplugin("asyncio"):
        return
    if not sets_itself(early_config.inipath, args, ASYNCIO_MODE):
        args.insert(0, "--asyncio-mode=auto")
    early_config.stash[QUIET_LOOP_SCOPE] = not sets_itself(early_config.inipath, args, LOOP_SCOPE)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # pytest-asyncio warns at configure time when the loop scope is unset (an
    # error under filterwarnings = error). Unset, each async fixture runs in the
    # loop of its own scope, which is what consumer_harness needs: say nothing.
    if config.stash.get(QUIET_LOOP_SCOPE, False):
        warnings.filterwarnings(
            "ignore", message=LOOP_SCOPE_UNSET, category=pytest.PytestDeprecationWarning
        )


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

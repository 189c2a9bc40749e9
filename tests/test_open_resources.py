"""The container's resources start one by one: one failure is one error, nothing else."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from dependency_injector import containers, providers

from framework.wiring.container import open_resources, resolve

STARTED: list[str] = []


async def refused() -> AsyncIterator[None]:
    STARTED.append("refused")
    await asyncio.sleep(0)
    raise ConnectionRefusedError("the broker said no")
    yield  # an async generator, as the framework's resources are


async def slow() -> AsyncIterator[str]:
    STARTED.append("slow")
    await asyncio.sleep(0.2)
    yield "slow"


async def quick() -> AsyncIterator[str]:
    yield "quick"


async def combined(settings: str, logger: str, default: str) -> AsyncIterator[str]:
    yield default


class Resources(containers.DeclarativeContainer):
    """Like the framework's: a consuming connection, and publishers built on a publisher."""

    settings = providers.Object("settings")
    logger = providers.Resource(quick)
    connection = providers.Resource(refused)
    publisher = providers.Resource(slow)
    publishers = providers.Resource(combined, settings=settings, logger=logger, default=publisher)


async def reported_while(start: Any) -> tuple[BaseException | None, list[str]]:
    loop = asyncio.get_running_loop()
    reports: list[str] = []
    loop.set_exception_handler(lambda _, context: reports.append(context["message"]))
    try:
        await start
    except BaseException as error:
        raised: BaseException | None = error
    else:
        raised = None
    await asyncio.sleep(0.3)  # whatever was cancelled has reported by now
    loop.set_exception_handler(None)
    return raised, reports


async def test_a_failing_resource_is_the_only_error() -> None:
    """The first failure stops the start: nothing after it begins, nothing reports on the loop."""
    STARTED.clear()
    container = Resources()
    raised, reports = await reported_while(open_resources(container))
    assert isinstance(raised, ConnectionRefusedError)
    assert ["refused"] == STARTED  # the publisher, declared after it, never began
    assert [] == reports
    await resolve(container.shutdown_resources())

"""Startup and shutdown hooks get what handlers get: injected, awaited services, the container."""

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide

from framework import BulkConsumer, Container, HookDefinitionError, Message, Orchestrator
from tests.broker import Broker
from tests.conftest import make_container
from tests.test_orchestrator import wait_until


class Repository:
    """A SQLite repository whose schema a startup hook creates."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:")
        self.closed = False

    def create_schema(self) -> None:
        self.db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)")

    def save(self, ids: list[int]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO items (id) VALUES (?)", [(i,) for i in ids])

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM items").fetchone()[0])


async def open_repository() -> AsyncIterator[Repository]:
    repository = Repository()
    yield repository
    repository.closed = True


class AppContainer(Container):
    repository = providers.Resource(open_repository)


async def test_a_startup_hook_gets_its_async_resource_awaited_and_creates_the_schema(
    broker: Broker,
) -> None:
    """The hook's Provide["repository"] is the repository, not a future; the schema exists."""
    queue = broker.queue_name("hook-schema")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(4))
    container = make_container(container_class=AppContainer)

    class Items(BulkConsumer):
        queues = [queue]
        bulk_size = 4

        async def handle(
            self, messages: list[Message[Any]], repository: Repository = Provide["repository"]
        ) -> None:
            repository.save([message.body["id"] for message in messages])

    orchestrator = Orchestrator([Items], container)
    seen: list[Any] = []

    @orchestrator.on_startup
    async def create_schema(repository: Repository = Provide["repository"]) -> None:
        seen.append(repository)
        repository.create_schema()

    async with orchestrator:
        repository = await container.repository()
        await wait_until(lambda: repository.count() == 4)
    assert [repository] == seen
    assert 0 == await broker.ready_count(queue)


async def test_a_hook_may_take_the_container_and_injections_together(broker: Broker) -> None:
    """One plain positional parameter is the container; the others are injected."""
    container = make_container(container_class=AppContainer)
    orchestrator = Orchestrator([], container)
    calls: list[tuple[Any, Any]] = []

    async def both(given: Any, state: dict[str, Any] = Provide["state"]) -> None:
        calls.append((given, state))

    orchestrator.on_shutdown(both)
    await container.init_resources()
    await orchestrator.run_shutdown_hooks()
    assert [(container, container.state())] == calls


def test_a_hook_that_is_not_async_is_refused_at_registration() -> None:
    """A plain function is a HookDefinitionError naming it."""
    orchestrator = Orchestrator([], make_container())

    def sync_hook(container: Any) -> None: ...

    with pytest.raises(HookDefinitionError, match=r"hook .*sync_hook must be a coroutine"):
        orchestrator.on_startup(sync_hook)  # type: ignore[arg-type]


def test_a_hook_with_a_parameter_nobody_fills_is_refused_naming_it() -> None:
    """A second plain parameter is neither the container nor injected."""
    orchestrator = Orchestrator([], make_container())

    async def greedy(container: Any, repository: Any) -> None: ...

    with pytest.raises(HookDefinitionError, match=r"greedy parameter 'repository' is neither"):
        orchestrator.on_startup(greedy)


def test_on_startup_keeps_the_hook_as_it_was() -> None:
    """The decorator returns the function itself, so its type and name stay."""
    orchestrator = Orchestrator([], make_container())

    async def warm_up() -> None: ...

    assert warm_up is orchestrator.on_startup(warm_up)


async def test_a_provider_marker_gives_the_provider_whose_call_gives_the_value() -> None:
    """`Provider["counter"]` in a hook: calling what is injected gives the counter itself."""
    from dependency_injector.wiring import Provider

    container = make_container(container_class=AppContainer)
    orchestrator = Orchestrator([], container)
    seen: list[Any] = []

    async def uses_a_provider(state_provider: Any = Provider["state"]) -> None:
        seen.append(state_provider())

    orchestrator.on_startup(uses_a_provider)
    await orchestrator.run_startup_hooks()
    assert [container.state()] == seen

"""The connections an orchestrator starts its consumers on, as the container provides them.

Every container has a consuming ``connection`` and a ``publisher``. The
framework's :class:`~framework.wiring.container.Container` also has pools by
connection name (``connections``, ``publishers``), opened on first use; a
container without them runs every consumer on the default pair.
"""

from collections.abc import Iterable
from typing import Protocol, TypeVar

import attrs
from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers

from framework.amqp.publisher import Publisher
from framework.core.abc import MovePublisher
from framework.core.consumer import DEFAULT_CONNECTION, ConsumerSettings
from framework.wiring.container import resolve

T_co = TypeVar("T_co", covariant=True)


class NamedPool(Protocol[T_co]):
    """One object per connection name, opened on first use (``Connections``, ``Publishers``)."""

    def opened(self) -> Iterable[tuple[str, T_co]]: ...

    async def of(self, name: str) -> T_co: ...


Pools = tuple[NamedPool[AbstractRobustConnection], NamedPool[MovePublisher]]


@attrs.define
class ConsumerConnections:
    """The default connection and publisher, and the pools by name when the container has them."""

    connection: AbstractRobustConnection
    publisher: MovePublisher
    pools: Pools | None = None

    @classmethod
    async def of(cls, container: containers.Container) -> "ConsumerConnections":
        """The container's connections, its async resources awaited."""
        connection: AbstractRobustConnection = await resolve(container.connection())
        publisher: MovePublisher = await resolve(container.publisher())
        if not hasattr(container, "connections") or not hasattr(container, "publishers"):
            return cls(connection, publisher)
        connections: NamedPool[AbstractRobustConnection] = await resolve(container.connections())
        publishers: NamedPool[MovePublisher] = await resolve(container.publishers())
        return cls(connection, publisher, (connections, publishers))

    async def of_consumer(
        self, settings: ConsumerSettings
    ) -> tuple[AbstractRobustConnection, MovePublisher]:
        """The consuming connection and the publisher of the consumer's connection name."""
        if self.pools is None:
            return self.connection, self.publisher
        connections, publishers = self.pools
        return await connections.of(settings.connection), await publishers.of(settings.connection)

    def opened(self) -> list[tuple[str, str, AbstractRobustConnection | None]]:
        """Each open connection as (name, purpose, connection)."""
        if self.pools is None:
            found: list[tuple[str, str, AbstractRobustConnection | None]]
            found = [(DEFAULT_CONNECTION, "consuming", self.connection)]
            if isinstance(self.publisher, Publisher):
                found.append((DEFAULT_CONNECTION, "publishing", self.publisher.connection))
            return found
        connections, publishers = self.pools
        return [
            *((name, "consuming", c) for name, c in connections.opened()),
            *((name, "publishing", connection_of(p)) for name, p in publishers.opened()),
        ]

    async def close_publisher(self, within: float) -> bool:
        """Close the default publisher's channel, with the consumers' channels."""
        # Closing its connection later then takes one step of the budget, not two.
        if isinstance(self.publisher, Publisher):
            await self.publisher.close(within)
        return True


def connection_of(publisher: MovePublisher) -> AbstractRobustConnection | None:
    """The publishing connection of a real publisher; None for a stand-in (tests)."""
    return publisher.connection if isinstance(publisher, Publisher) else None

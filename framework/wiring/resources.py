"""The container's resources: the logger and the RabbitMQ connections, from the settings.

The ``default`` connection pair (one connection consuming, one publishing) is
``connection`` and ``publisher``. Named connections (``BulkConsumer.connection
= "analytics"``, URL from ``BULKWORKER_AMQP_URL_ANALYTICS``) come from
``connections`` and ``publishers``, each opened the first time it is asked for.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, Self

from aio_pika.abc import AbstractRobustConnection

from framework.amqp.connection import close_timeout, robust_connection
from framework.amqp.publisher import Publisher
from framework.config.deployment import Deployment, url_variable
from framework.core.abc import EventLog
from framework.core.consumer import DEFAULT_CONNECTION
from framework.errors import ConfigurationError
from framework.observe.log import BulkworkerLogger, build_logger
from framework.sinks.pool import PoolOnDemand, open_pool_on_demand


async def open_logger(settings: Deployment, fd: int = 1) -> AsyncIterator[BulkworkerLogger]:
    """Container resource: the logger on ``fd`` (stdout), shut down last."""
    logger = build_logger(settings.log_level, fd, settings.log_format)
    try:
        yield logger
    finally:
        await logger.shutdown()


def connection_for(
    purpose: str, settings: Deployment, logger: EventLog, url: str | None = None
) -> AbstractAsyncContextManager[AbstractRobustConnection]:
    """A robust connection for ``purpose`` with the deployment's timeouts (to ``url``)."""
    return robust_connection(
        purpose,
        url or settings.amqp_url,
        logger,
        connect_timeout=settings.connect_timeout,
        reconnect_max_delay=settings.reconnect_max_delay,
        shutdown_timeout=settings.shutdown_timeout,
    )


async def open_connection(
    settings: Deployment, logger: EventLog
) -> AsyncIterator[AbstractRobustConnection]:
    """Container resource: the consumers' robust connection, closed on shutdown."""
    async with connection_for("consuming", settings, logger) as connection:
        yield connection


async def open_publisher(settings: Deployment, logger: EventLog) -> AsyncIterator[Publisher]:
    """Container resource: a publisher on its own robust connection."""
    async with connection_for("publishing", settings, logger) as connection:
        publisher = Publisher(connection)
        try:
            await publisher.open()
            yield publisher
        finally:
            await publisher.close(close_timeout(settings.shutdown_timeout))


class Pool:
    """Something per connection name (a connection, a publisher), opened on first use.

    ``default`` is the container's own; the others open on the URL their
    name's variable gives, and close, in reverse, when the pool does (on
    leaving ``async with``, or :meth:`close`).
    """

    purpose = ""

    def __init__(self, settings: Deployment, logger: EventLog, default: Any) -> None:
        self._settings = settings
        self._logger = logger
        self._opened: dict[str, Any] = {DEFAULT_CONNECTION: default}
        self._closing = AsyncExitStack()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {sorted(self._opened)}>"

    def opened(self) -> list[tuple[str, Any]]:
        return list(self._opened.items())

    async def of(self, name: str) -> Any:
        """The one for connection ``name``, opened now if it is the first time."""
        async with self._lock:  # two consumers of one name share one connection
            if name not in self._opened:
                url = self._settings.url_for(name)
                if url is None:
                    raise ConfigurationError(
                        f"connection {name!r} has no URL: set {url_variable(name)}"
                    )
                self._opened[name] = await self._open(name, url)
            return self._opened[name]

    async def _open(self, name: str, url: str) -> Any:
        return await self._closing.enter_async_context(
            connection_for(f"{self.purpose} on {name}", self._settings, self._logger, url)
        )

    async def close(self) -> None:
        await self._closing.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class Connections(Pool):
    """The consuming connection of each name."""

    purpose = "consuming"


class Publishers(Pool):
    """The publisher of each name, on a publishing connection of its own.

    Inject it (``publishers: Publishers = Provide["publishers"]``) and
    ``await publishers.of("analytics")`` to publish on the ``analytics`` connection.
    """

    purpose = "publishing"

    async def _open(self, name: str, url: str) -> Publisher:
        connection = await super()._open(name, url)
        publisher = Publisher(connection)
        await publisher.open()
        self._closing.push_async_callback(
            publisher.close, close_timeout(self._settings.shutdown_timeout)
        )
        return publisher


async def open_connections(
    settings: Deployment, logger: EventLog, default: AbstractRobustConnection
) -> AsyncIterator[Connections]:
    """Container resource: consuming connections by name, closed before the default one."""
    async with Connections(settings, logger, default) as connections:
        yield connections


async def open_publishers(
    settings: Deployment, logger: EventLog, default: Publisher
) -> AsyncIterator[Publishers]:
    """Container resource: publishers by name, closed before the default one."""
    async with Publishers(settings, logger, default) as publishers:
        yield publishers


async def open_postgres(settings: Deployment) -> AsyncIterator[PoolOnDemand]:
    """Container resource: the deployment's PostgreSQL pool, made on first use."""
    async for pools in open_pool_on_demand(
        settings.postgres_dsn, settings.postgres_pool_size, settings.shutdown_timeout
    ):
        yield pools

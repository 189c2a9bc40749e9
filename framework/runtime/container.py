"""The dependency-injector container every application starts from."""

from collections.abc import AsyncIterator
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers, providers

from framework.amqp.connection import redact, robust_connection
from framework.amqp.publisher import open_publisher
from framework.core.abc import EventLog
from framework.runtime.log import open_logger


async def open_connection(
    url: str | None,
    logger: EventLog,
    connect_timeout: float | None = None,
    reconnect_max_delay: float | None = None,
    shutdown_timeout: float | None = None,
) -> AsyncIterator[AbstractRobustConnection]:
    """Container resource: the consumers' robust connection, closed on shutdown."""
    async with robust_connection(
        "consuming", url, logger, connect_timeout, reconnect_max_delay, shutdown_timeout
    ) as connection:
        yield connection


class Container(containers.DeclarativeContainer):
    """Providers the framework and consumers share; subclass it to add your own.

    ``config`` is filled from the environment when an Orchestrator starts
    (see ``framework.runtime.settings``). ``connection`` consumes; ``publisher`` has a
    connection of its own, so a broker alarm that blocks publishing never
    blocks acks. Both depend directly on ``logger``, so shutting resources down
    closes them before the logger.
    """

    config = providers.Configuration()
    logger = providers.Resource(open_logger, level=config.log_level)
    connection = providers.Resource(
        open_connection,
        url=config.amqp_url,
        logger=logger,
        connect_timeout=config.connect_timeout,
        reconnect_max_delay=config.reconnect_max_delay,
        shutdown_timeout=config.shutdown_timeout,
    )
    publisher = providers.Resource(
        open_publisher,
        url=config.amqp_url,
        logger=logger,
        connect_timeout=config.connect_timeout,
        reconnect_max_delay=config.reconnect_max_delay,
        shutdown_timeout=config.shutdown_timeout,
    )
    state = providers.Singleton[dict[str, Any]](dict)


__all__ = ["Container", "open_connection", "redact"]

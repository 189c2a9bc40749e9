"""The container's resources: the logger and the two RabbitMQ connections, from the settings."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from aio_pika.abc import AbstractRobustConnection

from framework.amqp.connection import close_timeout, robust_connection
from framework.amqp.publisher import Publisher
from framework.core.abc import EventLog
from framework.runtime.log import BulkworkerLogger, build_logger
from framework.runtime.settings import Deployment


async def open_logger(settings: Deployment, fd: int = 1) -> AsyncIterator[BulkworkerLogger]:
    """Container resource: the logger on ``fd`` (stdout), shut down last."""
    logger = build_logger(settings.log_level, fd, settings.log_format)
    try:
        yield logger
    finally:
        await logger.shutdown()


def connection_for(
    purpose: str, settings: Deployment, logger: EventLog
) -> AbstractAsyncContextManager[AbstractRobustConnection]:
    """A robust connection for ``purpose`` with the deployment's timeouts."""
    return robust_connection(
        purpose,
        settings.amqp_url,
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

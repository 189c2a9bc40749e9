"""The broker connection a command opens, on a named connection."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers

from framework.amqp.connection import connect
from framework.config.deployment import Deployment, deployment_of, url_variable
from framework.core.consumer import DEFAULT_CONNECTION
from framework.errors import BulkworkerError
from framework.observe.log import build_logger, route_library_logs, unroute_library_logs


def configured(container: containers.Container) -> Deployment:
    """The deployment settings a command works with, resolved once."""
    return deployment_of(container)


@asynccontextmanager
async def broker_connection(
    settings: Deployment, name: str = DEFAULT_CONNECTION
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection for a command, on connection ``name``; warnings go to stderr."""
    url = settings.url_for(name)
    if url is None:
        raise BulkworkerError(f"connection {name!r} has no URL: set {url_variable(name)}")
    logger = build_logger("WARNING", fd=2)
    library_logs = route_library_logs("WARNING", fd=2)
    try:
        connection = await connect(
            url,
            logger,
            purpose="command",
            connect_timeout=settings.connect_timeout,
        )
        try:
            yield connection
        finally:
            await connection.close()
    finally:
        unroute_library_logs(library_logs)
        await logger.shutdown()

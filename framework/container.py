"""The dependency-injector container every application starts from."""

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError
from dependency_injector import containers, providers

from framework.errors import BrokerUnreachableError
from framework.log import EventLog, open_logger


def redact(url: str) -> str:
    """``url`` with its password masked, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":******@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_connection(url: str, logger: EventLog) -> AsyncIterator[AbstractRobustConnection]:
    """Container resource: a robust aio-pika connection, closed on shutdown."""
    try:
        connection = await aio_pika.connect_robust(url)
    except (AMQPError, OSError) as error:
        reason = str(error).replace(url, redact(url)) or type(error).__name__
        raise BrokerUnreachableError(
            f"cannot connect to RabbitMQ at {redact(url)} ({reason}): start RabbitMQ "
            "or point BULKWORKER_AMQP_URL at it"
        ) from None
    await logger.info("connected to RabbitMQ", extra={"url": redact(url)})
    try:
        yield connection
    finally:
        await connection.close()
        # The logger is a direct dependency, so it is still open here.
        await logger.info("RabbitMQ connection closed", extra={"url": redact(url)})


class Container(containers.DeclarativeContainer):
    """Providers the framework and consumers share; subclass it to add your own.

    ``config`` is filled from the environment when an Orchestrator starts
    (see ``framework.settings``). ``logger`` depends on nothing and
    ``connection`` on ``logger``, so shutting resources down closes the
    connection before the logger.
    """

    config = providers.Configuration()
    logger = providers.Resource(open_logger, level=config.log_level)
    connection = providers.Resource(open_connection, url=config.amqp_url, logger=logger)
    state = providers.Singleton[dict[str, Any]](dict)

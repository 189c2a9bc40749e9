"""Connections to RabbitMQ: retried at start, reconnected with exponential backoff."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import AMQPError, AuthenticationError, ProbableAuthenticationError
from yarl import URL

from framework.errors import BrokerUnreachableError
from framework.log import EventLog
from framework.settings import value_of

FIRST_RETRY_DELAY = 0.5


def redact(url: str) -> str:
    """``url`` with its password masked, for logs and error messages."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":******@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class BackoffConnection(RobustConnection):
    """A robust connection whose reconnect delay doubles while the broker stays away.

    aio-pika sleeps ``reconnect_interval`` between attempts; here that is the
    time the connection has been down so far (at least the base interval, at
    most ``max_reconnect_delay``), which doubles it attempt after attempt.
    """

    max_reconnect_delay = 30.0
    # The first pause after a drop: short, since most drops are brief.
    PARAMETERS = tuple(
        dataclasses.replace(parameter, default=str(FIRST_RETRY_DELAY))
        if parameter.name == "reconnect_interval"
        else parameter
        for parameter in RobustConnection.PARAMETERS
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._down_since: float | None = None
        super().__init__(*args, **kwargs)

    @property
    def reconnect_interval(self) -> float:
        base = self._base_interval
        if self._down_since is None:
            return base
        down_for = self.loop.time() - self._down_since
        return min(self.max_reconnect_delay, max(base, down_for))

    @reconnect_interval.setter
    def reconnect_interval(self, value: float) -> None:
        self._base_interval = float(value)

    async def _on_connection_close(self, closing: asyncio.Future[Any]) -> None:
        if self._down_since is None:
            self._down_since = self.loop.time()
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        await super()._on_connected()
        self._down_since = None

    def __repr__(self) -> str:
        return f"<BackoffConnection {redact(str(self.url))}>"

    def __str__(self) -> str:
        return redact(str(self.url))


def unreachable(url: str, error: BaseException) -> str:
    reason = str(error).replace(url, redact(url)) or type(error).__name__
    return f"cannot connect to RabbitMQ at {redact(url)} ({reason})"


async def open_robust(url: str) -> BackoffConnection:
    connection = BackoffConnection(URL(url))
    try:
        await connection.connect()
    except BaseException:
        # Closed now, or aio-pika's finalizer would leave a close() never awaited.
        await connection.close()
        raise
    return connection


async def connect(
    url: str,
    logger: EventLog,
    *,
    purpose: str,
    connect_timeout: float = 60.0,
    reconnect_max_delay: float = 30.0,
) -> AbstractRobustConnection:
    """Connect, retrying with backoff for ``connect_timeout`` seconds, logging each attempt."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    delay = FIRST_RETRY_DELAY
    attempt = 1
    while True:
        try:
            connection = await open_robust(url)
        except (AuthenticationError, ProbableAuthenticationError) as error:
            raise BrokerUnreachableError(
                f"{unreachable(url, error)}: check the user and password in BULKWORKER_AMQP_URL"
            ) from None
        except (AMQPError, OSError) as error:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerUnreachableError(
                    f"{unreachable(url, error)} after {attempt} attempts in {connect_timeout:g}s: "
                    "start RabbitMQ or point BULKWORKER_AMQP_URL at it"
                ) from None
            await logger.warning(
                "RabbitMQ unreachable, retrying",
                extra={
                    "for": purpose,
                    "url": redact(url),
                    "attempt": attempt,
                    "retry_in": round(min(delay, remaining), 2),
                    "error": str(error),
                },
            )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, reconnect_max_delay)
            attempt += 1
            continue
        connection.max_reconnect_delay = reconnect_max_delay
        await logger.info("connected to RabbitMQ", extra={"url": redact(url), "for": purpose})
        return connection


def close_timeout(shutdown_timeout: float) -> float:
    """How long one connection or channel may take to close: a share of the shutdown."""
    return min(5.0, shutdown_timeout / 4)


async def close_within(closable: Any, seconds: float) -> bool:
    """Close a connection or channel, giving up after ``seconds`` (a dead peer never answers).

    Returns False when it gave up; the broker then requeues whatever the
    connection held, once it notices the connection is gone.
    """
    if closable.is_closed:
        return True
    try:
        async with asyncio.timeout(seconds):
            await closable.close()
    except TimeoutError:
        return False
    return True


@asynccontextmanager
async def robust_connection(
    purpose: str,
    url: str | None,
    logger: EventLog,
    connect_timeout: float | None = None,
    reconnect_max_delay: float | None = None,
    shutdown_timeout: float | None = None,
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection for one purpose, settings defaulted from the environment, closed in time."""
    url = value_of("amqp_url", url)
    connection = await connect(
        url,
        logger,
        purpose=purpose,
        connect_timeout=value_of("connect_timeout", connect_timeout),
        reconnect_max_delay=value_of("reconnect_max_delay", reconnect_max_delay),
    )
    try:
        yield connection
    finally:
        seconds = close_timeout(value_of("shutdown_timeout", shutdown_timeout))
        # The logger is a direct dependency of the resources using this, so still open.
        if await close_within(connection, seconds):
            await logger.info("RabbitMQ connection closed", extra={"for": purpose})
        else:
            await logger.warning(
                "RabbitMQ did not answer the close in time: connection abandoned",
                extra={"for": purpose, "url": redact(url)},
            )

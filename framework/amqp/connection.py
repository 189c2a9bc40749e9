"""Connections to RabbitMQ: retried at start, reconnected with exponential backoff.

``BULKWORKER_AMQP_URL`` may name several nodes of a cluster, comma-separated:
the first that answers is used, and a lost connection moves on to the next.
A broker that answers but refuses (no such vhost, login refused) is an error
at once: retrying cannot fix a setting.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from aiormq import spec
from aiormq.exceptions import (
    AMQPError,
    AuthenticationError,
    ConnectionClosed,
    InvalidFrameError,
    ProbableAuthenticationError,
)
from yarl import URL

from framework.amqp.urls import redact as redact
from framework.amqp.urls import split_amqp_urls
from framework.core.abc import EventLog
from framework.errors import BrokerUnreachableError

FIRST_RETRY_DELAY = 0.5
# Less time than this left before the connect timeout: give up rather than retry at once.
SHORTEST_PAUSE = 0.05
NOT_ALLOWED = 530


class BackoffConnection(RobustConnection):
    """A robust connection that backs off while the broker stays away, over several nodes.

    aio-pika sleeps ``reconnect_interval`` between attempts; here that is the
    time the connection has been down so far (at least the base interval, at
    most ``max_reconnect_delay``), which doubles it attempt after attempt.
    Each attempt after the first goes to the next of ``nodes``, in turn.
    Losing and regaining the connection is logged as one line each on ``events``.
    """

    max_reconnect_delay = 30.0
    # The first pause after a drop: short, since most drops are brief.
    PARAMETERS = tuple(
        dataclasses.replace(parameter, default=str(FIRST_RETRY_DELAY))
        if parameter.name == "reconnect_interval"
        else parameter
        for parameter in RobustConnection.PARAMETERS
    )

    def __init__(
        self,
        nodes: Sequence[URL],
        *,
        first: int = 0,
        events: EventLog | None = None,
        purpose: str = "",
        **kwargs: Any,
    ) -> None:
        self._nodes = list(nodes)
        self._node = first
        self._transport: Any = None
        self._was_connected = False
        self._down_since: float | None = None
        self._events = events
        self._purpose = purpose
        super().__init__(self._nodes[first], **kwargs)

    @property
    def url(self) -> URL:
        """The URL of the node this connection uses (or tries) now."""
        return self._nodes[self._node]

    @url.setter
    def url(self, value: URL) -> None:
        self._nodes[self._node] = URL(value)

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        # aio-pika clears the transport right before each reconnection attempt
        # (and on close): the point to move on to the next node.
        if value is None and self._was_connected:
            self._node = (self._node + 1) % len(self._nodes)
        self._transport = value

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
            # A failed first handshake lands here too: that is not a loss.
            if self._was_connected and not (self._close_called or self.is_closed):
                await self._tell("warning", "RabbitMQ connection lost: reconnecting", closing)
        await super()._on_connection_close(closing)

    async def _on_connected(self) -> None:
        down_since = self._down_since
        await super()._on_connected()
        self._down_since = None
        self._was_connected = True
        if down_since is not None:
            await self._tell("info", "RabbitMQ connection restored", down_for=down_since)

    async def _tell(
        self,
        level: str,
        message: str,
        closing: asyncio.Future[Any] | None = None,
        down_for: float | None = None,
    ) -> None:
        if self._events is None:
            return
        extra: dict[str, Any] = {"for": self._purpose, "url": redact(str(self.url))}
        if closing is not None:
            extra["error"] = close_reason(closing)
        if down_for is not None:
            extra["down_for"] = round(self.loop.time() - down_for, 2)
        await getattr(self._events, level)(message, extra=extra)

    def __repr__(self) -> str:
        return f"<BackoffConnection {redact(str(self.url))}>"

    def __str__(self) -> str:
        return redact(str(self.url))


def close_reason(closing: asyncio.Future[Any]) -> str:
    if closing.cancelled():
        return "closed"
    error = closing.exception()
    return describe(error) if error is not None else "closed"


def describe(error: BaseException) -> str:
    if isinstance(error, ConnectionClosed) and len(error.args) == 2:
        return str(error.args[1])
    return str(error) or type(error).__name__


def refusal(error: BaseException, node: URL) -> str | None:
    """Why the broker at ``node`` refused us for good, or None when a retry may succeed."""
    if isinstance(error, ProbableAuthenticationError):
        return f"login refused ({describe(error)}): check the user and password"
    if isinstance(error, AuthenticationError):
        return f"no login mechanism in common with the broker ({describe(error)})"
    close = connection_close_of(error)
    if close is None or close.reply_code != NOT_ALLOWED:
        return None
    text = str(close.reply_text)
    vhost = node.path[1:] or "/"
    if text.endswith("not found"):
        return f"vhost {vhost!r} does not exist ({text}): create it or fix the vhost"
    if text.endswith("'") and "refused for user" in text:
        return f"the user may not use vhost {vhost!r} ({text}): grant it or fix the user"
    return None  # e.g. "vhost ... is down" while a node boots, or a connection limit


def connection_close_of(error: BaseException) -> Any:
    """The broker's Connection.Close frame behind ``error``, if it sent one while we opened.

    aiormq 7.2 reports it as an InvalidFrameError that keeps only the frame's
    repr; the frame itself is still a local of the raising function.
    """
    if isinstance(error, ConnectionClosed) and len(error.args) == 2:
        return spec.Connection.Close(reply_code=error.args[0], reply_text=error.args[1])
    if not isinstance(error, InvalidFrameError):
        return None
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame.f_locals.get("frame")
        if isinstance(frame, spec.Connection.Close):
            return frame
        trace = trace.tb_next
    return None


async def open_robust(
    nodes: Sequence[URL], first: int = 0, events: EventLog | None = None, purpose: str = ""
) -> BackoffConnection:
    connection = BackoffConnection(nodes, first=first, events=events, purpose=purpose)
    try:
        await connection.connect()
    except BaseException:
        # Closed now, or aio-pika's finalizer would leave a close() never awaited.
        await connection.close()
        raise
    return connection


async def first_answering(
    nodes: Sequence[URL], logger: EventLog, purpose: str
) -> BackoffConnection | list[str]:
    """A connection to the first node that answers, in order; else why each failed."""
    failures = []
    for index, node in enumerate(nodes):
        try:
            return await open_robust(nodes, index, logger, purpose)
        except (AMQPError, OSError) as error:
            cause = refusal(error, node)
            if cause is not None:
                raise BrokerUnreachableError(
                    f"RabbitMQ at {redact(str(node))} refused the connection: {cause} "
                    "in BULKWORKER_AMQP_URL"
                ) from None
            failures.append(f"{redact(str(node))}: {describe(error)}")
    return failures


async def connect(
    url: str,
    logger: EventLog,
    *,
    purpose: str,
    connect_timeout: float = 60.0,
    reconnect_max_delay: float = 30.0,
) -> AbstractRobustConnection:
    """Connect to the first node that answers, retrying with backoff for ``connect_timeout``.

    Each round of failed attempts is logged as one line; a refusal (no such
    vhost, login refused) raises at once.
    """
    nodes = split_amqp_urls(url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    delay = FIRST_RETRY_DELAY
    attempt = 1
    while isinstance(answer := await first_answering(nodes, logger, purpose), list):
        remaining = deadline - loop.time()
        if remaining < SHORTEST_PAUSE:
            raise BrokerUnreachableError(
                f"cannot connect to RabbitMQ at {redact(url)} ({'; '.join(answer)}) "
                f"after {attempt} attempts in {connect_timeout:g}s: "
                "start RabbitMQ or point BULKWORKER_AMQP_URL at it"
            )
        pause = round(min(delay, remaining), 2)
        extra = {"for": purpose, "url": redact(url), "attempt": attempt, "retry_in": pause}
        await logger.warning(
            "RabbitMQ unreachable, retrying", extra={**extra, "error": "; ".join(answer)}
        )
        await asyncio.sleep(pause)
        delay = min(delay * 2, reconnect_max_delay)
        attempt += 1
    answer.max_reconnect_delay = reconnect_max_delay
    await logger.info("connected to RabbitMQ", extra={"url": redact(str(answer)), "for": purpose})
    return answer


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
    url: str,
    logger: EventLog,
    *,
    connect_timeout: float,
    reconnect_max_delay: float,
    shutdown_timeout: float,
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection for one purpose, closed within its share of ``shutdown_timeout``."""
    connection = await connect(
        url,
        logger,
        purpose=purpose,
        connect_timeout=connect_timeout,
        reconnect_max_delay=reconnect_max_delay,
    )
    try:
        yield connection
    finally:
        seconds = close_timeout(shutdown_timeout)
        # The logger is a direct dependency of the resources using this, so still open.
        if await close_within(connection, seconds):
            await logger.info("RabbitMQ connection closed", extra={"for": purpose})
        else:
            await logger.warning(
                "RabbitMQ did not answer the close in time: connection abandoned",
                extra={"for": purpose, "url": redact(url)},
            )

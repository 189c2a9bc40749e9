"""Publishing with broker confirms, on a connection of its own.

A broker memory or disk alarm blocks every connection that publishes. The
publisher therefore never shares the consumers' connection: while an alarm
lasts, publishing waits, and acks keep flowing.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import attrs
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq import spec
from aiormq.abc import DeliveredMessage

from framework.closing import unless_closed
from framework.connection import close_timeout, close_within, connect
from framework.errors import PublishError
from framework.log import EventLog

PERSISTENT = 2
TRANSIENT = 1
CONFIRM_WINDOW = 1000


def encode(body: Any) -> tuple[bytes, str | None]:
    """The bytes and content type of ``body``: bytes as they are, text as UTF-8, else JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    if attrs.has(type(body)):
        body = attrs.asdict(body)
    return json.dumps(body, separators=(",", ":")).encode(), "application/json"


class Publisher:
    """Publishes messages and waits for the broker to confirm each one."""

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self._connection = connection
        self._channel: AbstractRobustChannel | None = None
        self.published = 0

    def __repr__(self) -> str:
        return f"<Publisher published={self.published}>"

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self, within: float = 5.0) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await close_within(channel, within)

    async def publish(
        self,
        body: Any,
        *,
        routing_key: str,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        persistent: bool = True,
        mandatory: bool = False,
    ) -> None:
        """Publish ``body`` (JSON unless bytes or text) and wait for the broker's confirm.

        Raises :class:`PublishError` when the broker nacks the message, or
        returns it as unroutable (with ``mandatory=True``).
        """
        raw, detected_type = encode(body)
        properties = spec.Basic.Properties(
            content_type=content_type or detected_type,
            headers=dict(headers) if headers else None,
            message_id=message_id,
            delivery_mode=PERSISTENT if persistent else TRANSIENT,
        )
        await self.publish_raw(
            raw,
            routing_key=routing_key,
            exchange=exchange,
            properties=properties,
            mandatory=mandatory,
        )

    async def publish_many(
        self, bodies: Iterable[Any], *, routing_key: str, exchange: str = "", **options: Any
    ) -> int:
        """Publish every body with confirms, a window at a time; return how many."""
        count = 0
        window: list[Any] = []
        for body in bodies:
            window.append(body)
            if len(window) == CONFIRM_WINDOW:
                count += await self._publish_window(window, routing_key, exchange, options)
                window = []
        if window:
            count += await self._publish_window(window, routing_key, exchange, options)
        return count

    async def _publish_window(
        self, window: list[Any], routing_key: str, exchange: str, options: dict[str, Any]
    ) -> int:
        await asyncio.gather(
            *(
                self.publish(body, routing_key=routing_key, exchange=exchange, **options)
                for body in window
            )
        )
        return len(window)

    async def publish_raw(
        self,
        body: bytes,
        *,
        routing_key: str,
        properties: spec.Basic.Properties,
        exchange: str = "",
        mandatory: bool = True,
    ) -> None:
        """Publish bytes with exact AMQP properties; used to move messages between queues."""
        if self._channel is None:
            raise PublishError("the publisher is not open")
        channel = await self._channel.get_underlay_channel()
        # No time limit: under a broker alarm, confirms rightly wait for it to clear.
        result = await unless_closed(
            channel,
            channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
            ),
        )
        if not isinstance(result, spec.Basic.Ack):
            raise PublishError(
                f"the broker did not take the message for {exchange or 'the default exchange'} "
                f"with routing key {routing_key!r}: {describe_refusal(result)}"
            )
        self.published += 1


def describe_refusal(result: Any) -> str:
    if isinstance(result, DeliveredMessage):
        reply = getattr(result.delivery, "reply_text", "")
        return f"returned unroutable ({reply})"
    if isinstance(result, spec.Basic.Nack):
        return "nacked"
    return repr(result)


async def open_publisher(
    url: str,
    logger: EventLog,
    connect_timeout: float = 60.0,
    reconnect_max_delay: float = 30.0,
    shutdown_timeout: float = 30.0,
) -> AsyncIterator[Publisher]:
    """Container resource: a publisher on its own robust connection."""
    connection = await connect(
        url,
        logger,
        purpose="publishing",
        connect_timeout=connect_timeout,
        reconnect_max_delay=reconnect_max_delay,
    )
    publisher = Publisher(connection)
    seconds = close_timeout(shutdown_timeout)
    try:
        await publisher.open()
        yield publisher
    finally:
        await publisher.close(seconds)
        if not await close_within(connection, seconds):
            await logger.warning("RabbitMQ did not answer the close in time: connection abandoned")

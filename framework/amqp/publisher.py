"""Publishing with broker confirms, on a connection of its own.

A broker memory or disk alarm blocks every connection that publishes. The
publisher therefore never shares the consumers' connection: while an alarm
lasts, publishing waits, and acks keep flowing.
"""

import abc
import asyncio
import uuid
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Any

import cattrs
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq import spec
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import ChannelAccessRefused

from framework.amqp.connection import close_within
from framework.amqp.declarations import broker_reason
from framework.amqp.properties import PERSISTENT, properties_of
from framework.amqp.trace_context import inject_trace_context
from framework.core.closing import unless_closed
from framework.core.outcome import Move
from framework.core.partitions import partition_route
from framework.core.serialization import DEFAULT_CONVERTER, encode_body
from framework.errors import ChannelGoneError, PublishError, UnroutableError

TRANSIENT = 1
CONFIRM_WINDOW = 1000


Prepared = tuple[bytes, spec.Basic.Properties]


class PublishingApi(abc.ABC):
    """``publish``, ``publish_many`` and ``publish_raw`` over one step that sends a window.

    The real :class:`Publisher` and the test harness's recording publisher
    share this: bodies are encoded, and properties built, by the same code.
    """

    converter: cattrs.BaseConverter

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
        mandatory: bool = True,
    ) -> None:
        """Publish ``body`` (JSON unless bytes or text) and wait for the broker's confirm.

        Raises :class:`SerializationError` (before sending anything) when a
        value cannot be written as JSON; :class:`PublishError` when the broker
        nacks the message, or returns it as unroutable (:class:`UnroutableError`:
        no queue is bound for ``routing_key``). ``mandatory=False`` lets the
        broker drop an unroutable message silently instead.
        """
        prepared = self.prepare(body, headers, message_id, content_type, persistent)
        await self._send([prepared], routing_key, exchange, mandatory)

    async def publish_partitioned(
        self,
        consumer: type[Any],
        body: Any,
        *,
        key: str | None = None,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        persistent: bool = True,
    ) -> None:
        """Publish ``body`` to the partition of a partitioned consumer that owns its key.

        The message goes to the consistent-hash exchange named after the
        consumer's queue, with the key as routing key: every message of one
        key reaches the same partition queue, in the order published. The key
        is ``key``, else what the consumer's ``partition_key`` reads from
        ``body`` and ``headers``; ``queue`` picks one of the consumer's queues
        when it has several. Raises :class:`PartitionKeyError` (before
        sending) when there is no key or the consumer is not partitioned, and
        what :meth:`publish` raises.
        """
        exchange, routing_key = partition_route(consumer, body, headers or {}, key, queue)
        await self.publish(
            body,
            routing_key=routing_key,
            exchange=exchange,
            headers=headers,
            message_id=message_id,
            content_type=content_type,
            persistent=persistent,
        )

    async def publish_many(
        self,
        bodies: Iterable[Any],
        *,
        routing_key: str,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        persistent: bool = True,
        mandatory: bool = True,
    ) -> int:
        """Publish every body with confirms, a window of them in flight at once.

        Returns how many were published. Every body is encoded first: a
        :class:`SerializationError` publishes none of them. Raises
        :class:`PublishError` if the broker refused any; the ones before that
        window were all confirmed.
        """
        prepared = [self.prepare(body, headers, None, content_type, persistent) for body in bodies]
        count = 0
        for start in range(0, len(prepared), CONFIRM_WINDOW):
            window = prepared[start : start + CONFIRM_WINDOW]
            count += await self._send(window, routing_key, exchange, mandatory)
        return count

    def prepare(
        self,
        body: Any,
        headers: Mapping[str, Any] | None,
        message_id: str | None,
        content_type: str | None,
        persistent: bool,
    ) -> tuple[bytes, spec.Basic.Properties]:
        """The bytes and AMQP properties ``publish`` would send for ``body``."""
        return prepare(body, headers, message_id, content_type, persistent, self.converter)

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
        await self._send([(body, properties)], routing_key, exchange, mandatory)

    @abc.abstractmethod
    async def _send(
        self, window: list[Prepared], routing_key: str, exchange: str, mandatory: bool
    ) -> int:
        """Send ``window`` and wait for the broker's verdict on each; the count taken."""


class Publisher(PublishingApi):
    """Publishes messages and waits for the broker to confirm each one.

    Bodies that are neither bytes nor text are written as JSON through
    ``converter`` (attrs instances, datetimes, UUIDs, Decimals, enums...).
    """

    def __init__(
        self,
        connection: AbstractRobustConnection,
        converter: cattrs.BaseConverter = DEFAULT_CONVERTER,
    ) -> None:
        self._connection = connection
        self.converter = converter
        self._channel: AbstractRobustChannel | None = None
        self.published = 0

    def __repr__(self) -> str:
        return f"<Publisher published={self.published}>"

    @property
    def connection(self) -> AbstractRobustConnection:
        """The connection this publisher publishes on (its own)."""
        return self._connection

    async def open(self) -> None:
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self, within: float = 5.0) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await close_within(channel, within)

    async def refusal(self) -> str | None:
        """Why the broker refuses this user's publishes to the default exchange, or None.

        Raises :class:`PublishError` while the publisher's connection is down.
        """
        transport = self._connection.transport
        if transport is None:
            raise PublishError("the publisher's connection is down")
        return await publish_refusal(transport.connection)

    async def publish_move(self, move: Move) -> None:
        """Publish the copy ``move`` describes (a retry or a dead letter), mandatory, confirmed."""
        if self._channel is None:
            raise PublishError("the publisher is not open")
        underlay = await self._channel.get_underlay_channel()
        properties = properties_of(move, frame_max_of(underlay))
        await self._send([(move.message.raw, properties)], move.routing_key, "", True)

    async def _send(
        self, window: list[Prepared], routing_key: str, exchange: str, mandatory: bool
    ) -> int:
        if self._channel is None:
            raise PublishError("the publisher is not open")
        channel = await self._channel.get_underlay_channel()
        sends = [
            channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                # The confirm is what counts; not waiting for each socket write
                # lets the publishes of a window share writes. (aiormq's Channel
                # takes `wait`; its abstract base does not declare it.)
                wait=False,  # type: ignore[call-arg]
            )
            for body, properties in window
        ]
        # No time limit: under a broker alarm, confirms rightly wait for it to clear.
        results = await unless_closed(channel, confirmations(sends))
        raise_first_failure(results)
        refused = [result for result in results if not isinstance(result, spec.Basic.Ack)]
        self.published += len(window) - len(refused)
        if refused:
            error = UnroutableError if is_returned(refused[0]) else PublishError
            raise refusal_error(
                error,
                len(refused),
                len(window),
                exchange,
                routing_key,
                describe_refusal(refused[0]),
            )
        return len(window)


async def confirmations(sends: Sequence[Awaitable[Any]]) -> list[Any]:
    # Awaited inside a task of its own: when the wait is given up (a stop, a
    # closed channel), that task still collects the gather's outcome, so no
    # "exception was never retrieved" is left behind; confirms failing late
    # are kept in the results.
    return await asyncio.gather(*sends, return_exceptions=True)


def refusal_error(
    kind: type[PublishError], refused: int, sent: int, exchange: str, routing_key: str, why: str
) -> PublishError:
    """The error for ``refused`` of ``sent`` messages the broker did not take, and ``why``."""
    return kind(
        f"the broker did not take {refused} of {sent} messages for "
        f"{exchange or 'the default exchange'} with routing key {routing_key!r}: {why}"
    )


def raise_first_failure(results: list[Any]) -> None:
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise ChannelGoneError("the channel closed before the broker confirmed") from None
        if isinstance(result, BaseException):
            raise result


def prepare(
    body: Any,
    headers: Mapping[str, Any] | None,
    message_id: str | None,
    content_type: str | None,
    persistent: bool,
    converter: cattrs.BaseConverter = DEFAULT_CONVERTER,
) -> tuple[bytes, spec.Basic.Properties]:
    raw, detected_type = encode_body(body, converter)
    carried = dict(headers) if headers else {}
    inject_trace_context(carried)
    properties = spec.Basic.Properties(
        content_type=content_type or detected_type,
        headers=carried or None,
        message_id=message_id,
        delivery_mode=PERSISTENT if persistent else TRANSIENT,
    )
    return raw, properties


async def publish_refusal(amqp: Any) -> str | None:
    """The broker's refusal of a publish to the default exchange, or None if it may publish.

    Retry and dead-letter copies go through the default exchange, and RabbitMQ
    checks ``write`` permission on the exchange (``amq.default``), not on the
    queue a message is routed to. The probe publishes an empty message to a
    routing key no queue has, on a throwaway confirm-mode channel: the default
    exchange drops it, or the broker refuses it (closing only that channel).

    Args:
        amqp: an aiormq connection logged in as the user that publishes the copies.
    """
    probe = await amqp.channel(publisher_confirms=True)
    try:
        await probe.basic_publish(b"", exchange="", routing_key=f"bulkworker.probe.{uuid.uuid4()}")
    except ChannelAccessRefused as error:
        return broker_reason(error)
    finally:
        if not probe.is_closed:
            await probe.close()
    return None


def is_returned(result: Any) -> bool:
    """Whether the broker returned the message (``NO_ROUTE``) rather than nacking it."""
    return isinstance(result, DeliveredMessage)


def frame_max_of(channel: Any) -> int:
    """The largest frame the broker takes on ``channel``'s connection; 0 when not known."""
    tune = getattr(channel.connection, "connection_tune", None)
    return int(getattr(tune, "frame_max", 0) or 0)


def describe_refusal(result: Any) -> str:
    if isinstance(result, DeliveredMessage):
        reply = getattr(result.delivery, "reply_text", "")
        return f"returned unroutable ({reply})"
    if isinstance(result, spec.Basic.Nack):
        return "nacked"
    return repr(result)

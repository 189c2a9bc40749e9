"""A consumer's link to RabbitMQ: its channel, queues, QoS and consumers.

Deliveries are consumed on the aiormq channel under aio-pika's robust channel:
that skips aio-pika's per-message objects, and each delivery is bound to the
exact channel object it arrived on. When the robust channel is reopened after
a reconnect, the subscription drops what the dead channel had buffered (the
broker redelivers it) and consumes again on the new one.
"""

from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.abc import DeliveredMessage
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelInvalidStateError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)

from framework.decoding import decode_body
from framework.engine import BulkEngine
from framework.errors import DecodeError, QueueError
from framework.log import EventLog
from framework.message import Delivery, Message


class Subscription:
    """Declares a consumer's queues and feeds their deliveries to its engine."""

    def __init__(self, connection: AbstractRobustConnection, engine: BulkEngine, log: EventLog):
        self._connection = connection
        self._engine = engine
        self._log = log
        self._settings = engine.settings
        self._channel: AbstractRobustChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._consumer_tags: list[str] = []

    def __repr__(self) -> str:
        return f"<Subscription {self._settings.name} consumers={len(self._consumer_tags)}>"

    async def open(self) -> None:
        """Open the channel, check or declare the queues, set QoS, start consuming."""
        channel = await self._connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=self._settings.prefetch)
        for queue in self._settings.queues:
            await self._declare(channel, queue)
        await self._consume()
        self._channel.reopen_callbacks.add(self._on_reopen)

    async def _declare(self, channel: Any, queue: str) -> None:
        arguments = dict(self._settings.queue_arguments) or None
        try:
            await channel.declare_queue(
                queue, durable=True, passive=not self._settings.declare, arguments=arguments
            )
        except ChannelNotFoundEntity:
            raise QueueError(
                f"queue {queue!r} does not exist and {self._settings.name}.declare is False: "
                "create the queue, or set declare = True"
            ) from None
        except ChannelPreconditionFailed as error:
            raise QueueError(
                f"queue {queue!r} exists with other arguments than {self._settings.name} "
                f"declares ({describe(arguments)}); the broker says: {broker_reason(error)}. "
                "Match queue_arguments to the queue, or delete the queue"
            ) from None
        except ChannelAccessRefused as error:
            raise QueueError(
                f"queue {queue!r}: access refused for this user ({broker_reason(error)}); "
                "grant configure/read permissions on it"
            ) from None

    async def _consume(self) -> None:
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        self._underlay = underlay
        underlay.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        self._consumer_tags = []
        for queue in self._settings.queues:
            consume_ok = await underlay.basic_consume(queue, QueueFeed(queue, self._engine).deliver)
            assert consume_ok.consumer_tag is not None
            self._consumer_tags.append(consume_ok.consumer_tag)

    async def _on_reopen(self, *_: Any) -> None:
        dropped = self._engine.drop_closed()
        await self._consume()
        await self._log.warning(
            "channel reopened: consuming again",
            extra={"consumer": self._settings.name, "dropped_from_buffer": dropped},
        )

    async def _on_broker_cancel(self, frame: Any) -> None:
        await self._log.error(
            "the broker cancelled a consumer (was its queue deleted?)",
            extra={"consumer": self._settings.name, "consumer_tag": frame.consumer_tag},
        )

    async def cancel(self) -> None:
        """Stop deliveries and wait for the broker to confirm: then nothing more arrives."""
        underlay, self._underlay = self._underlay, None
        if self._channel is not None:
            self._channel.reopen_callbacks.discard(self._on_reopen)
        if underlay is None or underlay.is_closed:
            return
        for tag in self._consumer_tags:
            try:
                await underlay.basic_cancel(tag)
            except (ChannelInvalidStateError, aiormq.exceptions.AMQPError, ConnectionError):
                return

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            await channel.close()


class QueueFeed:
    """Turns one queue's deliveries into messages for an engine."""

    __slots__ = ("engine", "queue")

    def __init__(self, queue: str, engine: BulkEngine) -> None:
        self.queue = queue
        self.engine = engine

    async def deliver(self, delivered: DeliveredMessage) -> None:
        # Runs once per message in aiormq's delivery task: keep it short and
        # never await on the accepting path, so arrival order is kept.
        frame = delivered.delivery
        properties = delivered.header.properties
        delivery = Delivery(delivered.channel, frame.delivery_tag)  # type: ignore[union-attr,arg-type]
        try:
            body = decode_body(delivered.body, properties.content_type)
        except DecodeError as error:
            await self.engine.refuse(delivery, self.queue, properties.message_id, str(error))
            return
        self.engine.accept(
            Message(
                body,
                delivered.body,
                self.queue,
                frame.routing_key,  # type: ignore[union-attr,arg-type]
                delivery,
                properties.headers or {},
                properties.content_type,
                properties.message_id,
                frame.redelivered,  # type: ignore[union-attr]
            )
        )


def broker_reason(error: Exception) -> str:
    """The broker's own words from a channel error, without the client's wrapping."""
    reply = error.args[0] if error.args else error
    text = getattr(reply, "reply_text", None) or str(reply)
    return str(text)


def describe(arguments: Mapping[str, Any] | None) -> str:
    return f"arguments {dict(arguments)!r}" if arguments else "no arguments"

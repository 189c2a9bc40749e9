"""Declaring queues on throwaway channels, and what the broker says when it refuses."""

from collections.abc import Mapping
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)

from framework.core.consumer import ConsumerSettings
from framework.errors import ChannelGoneError, QueueError


class QueueRedeclarer:
    """Declares again, on a throwaway channel, a queue that a consumer's settings name.

    The engine's mover calls it when a retry or dead-letter copy came back
    unroutable because a queue the framework declared at start has gone.
    """

    def __init__(self, connection: AbstractRobustConnection, settings: ConsumerSettings) -> None:
        self._connection = connection
        self._settings = settings

    def __repr__(self) -> str:
        return f"<QueueRedeclarer {self._settings.name}>"

    async def declare(self, queue: str) -> None:
        """Declare ``queue`` with the arguments the consumer declared it with at start."""
        transport = self._connection.transport
        if transport is None:
            raise ChannelGoneError("the consuming connection is down")
        for name, arguments, _ in self._settings.declarations():
            if name == queue:
                await declare_on_probe(
                    transport.connection, name, passive=False, arguments=arguments
                )
                return
        raise QueueError(f"{queue!r} is not a queue {self._settings.name} declares")


async def declare(
    underlay: aiormq.abc.AbstractChannel,
    queue: str,
    arguments: Mapping[str, Any],
    role: str,
    settings: ConsumerSettings,
) -> None:
    """Declare ``queue`` (or check it exists, with ``declare = False``); errors say what to fix."""
    try:
        await declare_on_probe(
            underlay.connection, queue, passive=not settings.declare, arguments=arguments
        )
    except ChannelNotFoundEntity as error:
        if settings.declare:
            # A durable classic queue whose node is down, seen from another node.
            raise QueueError(
                f"{role} {queue!r} cannot be declared now; the broker says: {broker_reason(error)}"
            ) from None
        raise QueueError(
            f"{role} {queue!r} does not exist and {settings.name}.declare is False: "
            "create the queue, or set declare = True"
        ) from None
    except ChannelPreconditionFailed as error:
        raise QueueError(
            f"{role} {queue!r} exists with other arguments than {settings.name} declares "
            f"({describe_arguments(arguments)}); the broker says: {broker_reason(error)}. "
            "Match queue_arguments to the queue, or delete the queue"
        ) from None
    except ChannelAccessRefused as error:
        raise QueueError(
            f"{role} {queue!r}: access refused for this user ({broker_reason(error)}); "
            "grant it configure, write and read permissions on the queue"
        ) from None


async def declare_on_probe(
    amqp: Any, queue: str, *, passive: bool, arguments: Mapping[str, Any] | None = None
) -> Any:
    """``queue.declare`` on a throwaway channel of connection ``amqp``; returns its DeclareOk.

    A failed declaration closes the channel it was made on: a throwaway one
    keeps the consuming channel, and its deliveries, alive.
    """
    probe = await amqp.channel()
    try:
        return await probe.queue_declare(
            queue, durable=True, passive=passive, arguments=dict(arguments or {}) or None
        )
    finally:
        if not probe.is_closed:
            await probe.close()


def broker_reason(error: Exception) -> str:
    """The broker's own words from a channel error, without the client's wrapping."""
    reply = error.args[0] if error.args else error
    text = getattr(reply, "reply_text", None) or str(reply)
    return str(text)


def describe_arguments(arguments: Mapping[str, Any] | None) -> str:
    return f"arguments {dict(arguments)!r}" if arguments else "no arguments"

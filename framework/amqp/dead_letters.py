"""Looking into a dead-letter queue, and moving its messages back where they came from."""

import contextlib
import copy
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import attrs
from aio_pika.abc import AbstractRobustConnection
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity

from framework.amqp.declarations import declare_on_probe
from framework.amqp.publisher import Publisher
from framework.core.headers import (
    ATTEMPTS_HEADER,
    DEAD_LETTER_HEADERS,
    ERROR_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    TIME_HEADER,
)
from framework.errors import QueueError


@attrs.frozen
class StoredDeadLetter:
    """One dead-lettered message as an operator sees it."""

    message_id: str | None
    reason: str
    error: str
    queue: str
    attempts: int
    dead_lettered_at: str
    body: bytes

    @classmethod
    def of(cls, delivered: Any, fallback_queue: str) -> "StoredDeadLetter":
        properties = delivered.header.properties
        headers: Mapping[str, Any] = properties.headers or {}
        return cls(
            message_id=properties.message_id,
            reason=str(headers.get(REASON_HEADER, "-")),
            error=str(headers.get(ERROR_HEADER, "-")),
            queue=str(headers.get(QUEUE_HEADER, fallback_queue)),
            attempts=int(headers.get(ATTEMPTS_HEADER, 0) or 0),
            dead_lettered_at=str(headers.get(TIME_HEADER, "-")),
            body=delivered.body,
        )


class DeadLetterQueue:
    """A dead-letter queue: read without taking (``show``), or replayed (``replay``)."""

    def __init__(self, connection: AbstractRobustConnection, name: str, origin: str) -> None:
        self.connection = connection
        self.name = name
        self.origin = origin

    async def _channel(self) -> Any:
        channel = await self.connection.channel()
        underlay = await channel.get_underlay_channel()
        try:
            declared = await declare_on_probe(underlay.connection, self.name, passive=True)
        except ChannelNotFoundEntity:
            await channel.close()
            raise QueueError(f"dead-letter queue {self.name!r} does not exist") from None
        return channel, underlay, int(declared.message_count or 0)

    async def show(
        self, limit: int, reason: str | None = None
    ) -> tuple[list[StoredDeadLetter], int]:
        """Up to ``limit`` dead letters (of ``reason``, if given) and how many wait; all stay."""
        channel, underlay, waiting = await self._channel()
        letters = []
        try:
            async with contextlib.aclosing(self._letters(underlay, waiting, reason)) as found:
                async for _, letter in found:
                    letters.append(letter)
                    if len(letters) >= limit:
                        break
        finally:
            # Closing the channel returns everything we looked at, unacked, to the queue.
            await channel.close()
        return letters, waiting

    async def _letters(
        self, underlay: Any, waiting: int, reason: str | None
    ) -> AsyncGenerator[tuple[Any, StoredDeadLetter], None]:
        """Each waiting dead letter (of ``reason``), unacked: the others stay where they were."""
        for _ in range(waiting):
            delivered = await underlay.basic_get(self.name, no_ack=False)
            if delivered.delivery_tag is None:
                return
            letter = StoredDeadLetter.of(delivered, self.origin)
            if reason is None or letter.reason == reason:
                yield delivered, letter

    async def replay(
        self, publisher: Publisher, limit: int, reason: str | None = None
    ) -> dict[str, int]:
        """Move up to ``limit`` dead letters (of ``reason``) back: confirmed publish, then ack.

        The ones left out are never acked: when the channel closes they go back
        to the dead-letter queue, each where it was.
        """
        channel, underlay, waiting = await self._channel()
        moved: dict[str, int] = {}
        try:
            async with contextlib.aclosing(self._letters(underlay, waiting, reason)) as letters:
                async for delivered, letter in letters:
                    await publisher.publish_raw(
                        delivered.body,
                        routing_key=letter.queue,
                        properties=fresh_properties(delivered.header.properties),
                    )
                    await underlay.basic_ack(delivered.delivery_tag)
                    moved[letter.queue] = moved.get(letter.queue, 0) + 1
                    if sum(moved.values()) >= limit:
                        break
        finally:
            await channel.close()
        return moved


def fresh_properties(properties: spec.Basic.Properties) -> spec.Basic.Properties:
    """The original properties without the dead-letter headers: a replay starts afresh."""
    replayed: spec.Basic.Properties = copy.copy(properties)
    headers = {k: v for k, v in (properties.headers or {}).items() if k not in DEAD_LETTER_HEADERS}
    replayed.headers = headers or None
    replayed.user_id = None
    return replayed

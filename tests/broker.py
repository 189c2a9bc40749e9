"""Arranging and inspecting the real RabbitMQ from tests."""

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection

AMQP_URL = os.environ.get("BULKWORKER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Broker:
    """A plain aio-pika connection for tests; deletes every queue it named."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel) -> None:
        self.connection = connection
        self.channel = channel
        self.names: list[str] = []

    @classmethod
    async def connect(cls, url: str = AMQP_URL) -> "Broker":
        connection = await aio_pika.connect(url)
        channel = await connection.channel(publisher_confirms=True)
        return cls(connection, channel)

    def queue_name(self, label: str) -> str:
        name = f"bulkworker.test.{label}.{uuid.uuid4().hex[:8]}"
        # The framework declares <queue>.dlq (and <queue>.retry with a delay) beside it.
        self.names.extend([name, f"{name}.dlq", f"{name}.retry"])
        return name

    async def declare(self, name: str, **arguments: Any) -> None:
        await self.channel.declare_queue(name, durable=True, arguments=arguments or None)

    async def declare_with_dead_letters(self, name: str) -> tuple[str, dict[str, Any]]:
        """Declare ``name`` with a dead-letter queue; return its name and ``name``'s arguments."""
        dead = f"{name}.dead"
        self.names.append(dead)
        await self.declare(dead)
        arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        await self.declare(name, **arguments)
        return dead, arguments

    async def publish(
        self,
        queue: str,
        body: Any,
        *,
        content_type: str | None = "application/json",
        message_id: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        message = aio_pika.Message(
            raw,
            content_type=content_type,
            message_id=message_id,
            headers=headers,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(message, routing_key=queue)

    async def publish_ids(self, queue: str, ids: range) -> None:
        for number in ids:
            await self.publish(queue, {"id": number}, message_id=str(number))

    async def _inspect(self, queue: str) -> Any:
        # A throwaway channel: a missing queue closes the channel that asked.
        channel = await self.connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        await channel.close()
        return declared.declaration_result

    async def ready_count(self, queue: str) -> int:
        """Messages ready in ``queue``; 0 when it does not exist."""
        result = await self._inspect(queue)
        return 0 if result is None else int(result.message_count)

    async def consumer_count(self, queue: str) -> int:
        """Consumers on ``queue``; 0 when it does not exist."""
        result = await self._inspect(queue)
        return 0 if result is None else int(result.consumer_count)

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take every ready message off ``queue`` (acked), in order."""
        taken = []
        source = await self.channel.declare_queue(queue, passive=True)
        while (message := await source.get(fail=False)) is not None:
            await message.ack()
            taken.append(message)
        return taken

    async def close(self) -> None:
        if self.connection.is_closed:
            return
        for name in self.names:
            try:
                await self.channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:
                self.channel = await self.connection.channel()
        await self.connection.close()


async def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll ``condition`` (sync or async) until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)

"""The consumer harness against RabbitMQ: the Orchestrator, on queues of the test's own."""

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import aio_pika

from framework.amqp.connection import connect
from framework.amqp.publisher import Publisher
from framework.core.layout import retry_queue
from framework.core.partitions import partition_route
from framework.runtime.orchestrator import Orchestrator
from framework.testing.outgoing import Outgoing

if TYPE_CHECKING:
    from framework.testing.harness import ConsumerHarness


class RealBroker:
    """The same harness against RabbitMQ: the Orchestrator on queues of its own."""

    def __init__(self, harness: "ConsumerHarness") -> None:
        self.harness = harness
        self.queues: list[str] = []
        self.orchestrator: Any = None
        self.connection: Any = None
        self.published = 0
        self.partitioned: type | None = None  # the consumer, when it has partitions

    async def start(self) -> None:
        harness = self.harness
        if harness.broker_url:
            harness.container.config.amqp_url.from_value(harness.broker_url)
        suffix = uuid.uuid4().hex[:8]
        original = harness.consumer_class
        self.queues = [f"{queue}.harness-{suffix}" for queue in original.queues]
        # A subclass that only renames the queues: same handle, same injection.
        isolated = type(
            original.__name__,
            (original,),
            {"queues": self.queues, "__module__": original.__module__},
        )
        if original.partitions is not None:
            self.partitioned = isolated
        self.orchestrator = Orchestrator([isolated], harness.container)
        await harness.run_startup_hooks()
        await self.orchestrator.start()
        harness.watch(self.orchestrator.runners[0].engine)
        # The harness's own publisher: whatever the test overrides, its input arrives.
        settings = self.orchestrator.settings
        self.connection = await connect(
            settings.amqp_url, harness.log, purpose="harness", connect_timeout=30.0
        )
        self.publisher = Publisher(self.connection)
        await self.publisher.open()

    async def publish(self, outgoing: Outgoing) -> None:
        exchange, routing_key = "", outgoing.queue
        if self.partitioned is not None:  # to its exchange, by the key, as a publisher would
            exchange, routing_key = partition_route(
                self.partitioned, outgoing.body, outgoing.headers, None, outgoing.queue
            )
        await self.publisher.publish(
            outgoing.raw,
            routing_key=routing_key,
            exchange=exchange,
            headers=outgoing.headers or None,
            content_type=outgoing.content_type,
            message_id=outgoing.message_id,
        )
        self.published += 1

    async def flush(self) -> None:
        engine = self.orchestrator.runners[0].engine
        deadline = asyncio.get_running_loop().time() + 30
        while len(self.harness.outcomes) < self.published or not engine.idle:
            engine.flush_now()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the consumer did not settle every message within 30 s")
            await asyncio.sleep(0.02)

    async def settle(self) -> None:
        await self.flush()

    async def drain(self) -> None:
        await self.flush()

    async def stop(self) -> None:
        if self.orchestrator is None:
            return
        try:
            await self.orchestrator.stop()
        finally:
            if self.connection is not None:
                await self.publisher.close()
                await self.connection.close()
            await self._delete_queues()

    async def _delete_queues(self) -> None:
        settings = self.orchestrator.runners[0].settings if self.orchestrator.runners else None
        url = self.orchestrator.settings.amqp_url
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for exchange in settings.exchanges if settings else ():
                await channel.exchange_delete(exchange)
            for queue in settings.queues if settings else self.queues:
                for name in (
                    queue,
                    settings and settings.dead_letter_queue_for(queue),
                    retry_queue(queue),
                ):
                    if name:
                        await channel.queue_delete(name)

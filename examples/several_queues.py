"""One consumer on several queues: bulks mix them, Message.queue tells them apart.

python examples/several_queues.py
"""

import asyncio
import os
from collections import Counter
from typing import Any

import aio_pika

from framework import BulkConsumer, Container, Message, Orchestrator

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
QUEUES = ["examples.orders", "examples.refunds"]
per_queue: Counter[str] = Counter()


class LedgerConsumer(BulkConsumer):
    queues = QUEUES
    bulk_size = 20
    flush_interval = 0.5

    async def handle(self, messages: list[Message[Any]]) -> None:
        per_queue.update(message.queue for message in messages)
        print(f"bulk of {len(messages)}: {dict(Counter(m.queue for m in messages))}")


async def main() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for queue, count in zip(QUEUES, (12, 8), strict=True):
            await channel.declare_queue(queue, durable=True)
            for number in range(count):
                message = aio_pika.Message(f'{{"n": {number}}}'.encode())
                await channel.default_exchange.publish(message, routing_key=queue)
        async with Orchestrator([LedgerConsumer], Container()):
            while sum(per_queue.values()) < 20:
                await asyncio.sleep(0.05)
        for queue in QUEUES:  # and the dead-letter queues the framework declared
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.dlq")
    print("handled per queue:", dict(sorted(per_queue.items())))


if __name__ == "__main__":
    os.environ.setdefault("BULKWORKER_LOG_LEVEL", "ERROR")
    asyncio.run(main())

"""Typed bulks: bodies arrive as attrs instances, and mypy checks the handler.

    python examples/typed_items.py

`model = Price` turns each JSON body into a `Price` before it joins a bulk; a
body that does not fit (here, a missing `amount`) is dead-lettered on its own
with the field and the reason, and never reaches `handle`.
"""

import asyncio
import json
import os

import aio_pika
import attrs

from framework import BulkConsumer, Container, Message, Orchestrator

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
QUEUE = "examples.prices"


@attrs.frozen
class Price:
    sku: str
    amount: float
    currency: str = "EUR"


totals: dict[str, float] = {}


class PricesConsumer(BulkConsumer):
    queues = [QUEUE]
    model = Price
    bulk_size = 10
    flush_interval = 0.5

    async def handle(self, messages: list[Message[Price]]) -> None:
        for message in messages:
            price = message.body  # a Price: mypy knows .amount is a float
            totals[price.currency] = totals.get(price.currency, 0.0) + price.amount


async def main() -> None:
    bodies = [
        {"sku": "lamp", "amount": 30},
        {"sku": "desk", "amount": 120.5, "currency": "USD"},
        {"sku": "chair"},
        {"sku": "rug", "amount": 45},
    ]
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for name in (QUEUE, f"{QUEUE}.dlq"):
            await (await channel.declare_queue(name, durable=True)).purge()
        for body in bodies:
            message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json")
            await channel.default_exchange.publish(message, routing_key=QUEUE)
        async with Orchestrator([PricesConsumer], Container()):
            dead_letters = await channel.declare_queue(f"{QUEUE}.dlq", durable=True)
            while (dead := await dead_letters.get(fail=False, no_ack=True)) is None:
                await asyncio.sleep(0.05)
        await channel.queue_delete(QUEUE)
        await channel.queue_delete(f"{QUEUE}.dlq")
    print("totals:", dict(sorted(totals.items())))
    print("dead-lettered:", json.loads(dead.body)["sku"], "-", dead.headers["x-bulkworker-error"])


if __name__ == "__main__":
    os.environ.setdefault("BULKWORKER_LOG_LEVEL", "CRITICAL")
    asyncio.run(main())

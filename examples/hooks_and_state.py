"""Startup and shutdown hooks, and app-wide state shared through the container.

    python examples/hooks_and_state.py

The startup hook loads a price list into ``state`` before any message is
handled; the consumer reads it; the shutdown hook reports the total.
"""

import asyncio
import os
from typing import Any

import aio_pika
from dependency_injector.wiring import Provide

from framework import BulkConsumer, Container, Message, Orchestrator

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
QUEUE = "examples.sales"


class SalesConsumer(BulkConsumer):
    queues = [QUEUE]
    bulk_size = 5
    flush_interval = 0.5

    async def handle(
        self, messages: list[Message[Any]], state: dict[str, Any] = Provide["state"]
    ) -> None:
        prices = state["prices"]
        state["total"] += sum(prices[message.body["product"]] for message in messages)
        state["sales"] += len(messages)


orchestrator = Orchestrator([SalesConsumer], Container())


@orchestrator.on_startup
async def load_prices(container: Any) -> None:
    state = container.state()
    state.update(prices={"lamp": 30, "desk": 120}, total=0, sales=0)
    print("startup: prices loaded")


@orchestrator.on_shutdown
async def report(container: Any) -> None:
    state = container.state()
    print(f"shutdown: {state['sales']} sales, total {state['total']}")


async def main() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(QUEUE, durable=True)
        for product in ["lamp", "desk", "lamp", "lamp", "desk", "desk", "lamp"]:
            body = f'{{"product": "{product}"}}'.encode()
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=QUEUE)
        async with orchestrator:
            state = orchestrator.container.state()
            while state["sales"] < 7:
                await asyncio.sleep(0.05)
        await channel.queue_delete(QUEUE)
        await channel.queue_delete(f"{QUEUE}.dlq")  # declared by the framework


if __name__ == "__main__":
    os.environ.setdefault("BULKWORKER_LOG_LEVEL", "ERROR")
    asyncio.run(main())

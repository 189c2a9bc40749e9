"""Per-message decisions: each message may override the bulk's action.

    python examples/decisions.py

Multiples of three are rejected (moved to the dead-letter queue
``examples.decisions.dlq``, with the reason in its headers), 4 is requeued once
(it comes back with ``message.attempts == 1``), every other number is acked.
"""

import asyncio
import json
import os
from typing import Any

import aio_pika

from framework import Actions, BulkConsumer, Container, Message, Orchestrator

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
QUEUE, DEAD = "examples.decisions", "examples.decisions.dlq"
outcomes: dict[int, list[str]] = {}


class NumbersConsumer(BulkConsumer):
    queues = [QUEUE]
    bulk_size = 10
    flush_interval = 0.5
    on_success = Actions.ACK

    async def handle(self, messages: list[Message[Any]]) -> None:
        for message in messages:
            number = message.body["n"]
            if number % 3 == 0:
                message.reject()
                outcomes.setdefault(number, []).append("rejected")
            elif number == 4 and message.attempts == 0:
                message.requeue()
                outcomes.setdefault(number, []).append("requeued")
            else:
                outcomes.setdefault(number, []).append("acked")


async def main() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for name in (QUEUE, DEAD):  # start clean, even after an interrupted run
            await (await channel.declare_queue(name, durable=True)).purge()
        for number in range(1, 9):
            body = f'{{"n": {number}}}'.encode()
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=QUEUE)
        async with Orchestrator([NumbersConsumer], Container()):
            while sum(len(seen) for seen in outcomes.values()) < 9:
                await asyncio.sleep(0.05)
        dead = await channel.declare_queue(DEAD, durable=True)
        dead_letters = []
        while (message := await dead.get(fail=False)) is not None:
            await message.ack()
            reason = message.headers["x-bulkworker-reason"]
            dead_letters.append(f"{json.loads(message.body)['n']} ({reason})")
        await channel.queue_delete(QUEUE)
        await channel.queue_delete(DEAD)
    for number in sorted(outcomes):
        print(number, " then ".join(outcomes[number]))
    print("dead-lettered:", ", ".join(sorted(dead_letters)))


if __name__ == "__main__":
    os.environ.setdefault("BULKWORKER_LOG_LEVEL", "ERROR")
    asyncio.run(main())

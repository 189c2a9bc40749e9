"""Orders into PostgreSQL: per-row outcomes, duplicates acked, and the bulk inbox.

    BULKWORKER_POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/postgres \\
        python examples/postgres_orders.py

Needs the ``postgres`` extra (asyncpg) and a PostgreSQL the DSN reaches. It
creates the table ``example_orders`` (and the inbox ``example_orders_inbox``)
afresh, publishes 100 orders of which two have a negative amount, and sends
orders 0-9 a second time with the same message ids. The consumer writes each
bulk with :class:`~framework.PostgresSink` inside the inbox's transaction:
98 rows are stored, the redelivered ten are acked without being applied, and
the two bad orders are dead-lettered with the database's reason.
"""

import asyncio
import os
from typing import Any

import aio_pika
import asyncpg
from dependency_injector.wiring import Provide

from framework import BulkConsumer, BulkInbox, Container, Message, Orchestrator, PostgresSink

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
DSN = os.environ.get("BULKWORKER_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
QUEUE, DEAD = "examples.pg_orders", "examples.pg_orders.dlq"
ORDERS = PostgresSink("example_orders", ("id", "customer", "amount"), conflict=("id",))
BAD = {13, 77}


class OrdersConsumer(BulkConsumer):
    queues = [QUEUE]
    bulk_size = 50
    flush_interval = 0.5
    inbox = BulkInbox(table="example_orders_inbox")

    async def handle(
        self, messages: list[Message[Any]], pool: asyncpg.Pool = Provide["postgres"]
    ) -> None:
        async with self.inbox.transaction(pool, messages) as admitted:
            await ORDERS.write(admitted.connection, admitted.messages)


async def prepare() -> None:
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(
            "DROP TABLE IF EXISTS example_orders, example_orders_inbox; "
            "CREATE TABLE example_orders (id bigint PRIMARY KEY, customer text NOT NULL, "
            "amount numeric NOT NULL CHECK (amount > 0))"
        )
    finally:
        await connection.close()


async def publish(channel: aio_pika.abc.AbstractChannel, numbers: range) -> None:
    for number in numbers:
        amount = -1 if number in BAD else number + 1
        body = f'{{"id": {number}, "customer": "c{number % 7}", "amount": {amount}}}'
        message = aio_pika.Message(
            body.encode(), content_type="application/json", message_id=f"order-{number}"
        )
        await channel.default_exchange.publish(message, routing_key=QUEUE)


async def settled(channel: aio_pika.abc.AbstractChannel) -> None:
    """Until every order is stored or dead-lettered and the queue is empty (30 s at most)."""
    connection = await asyncpg.connect(DSN)
    try:
        for _ in range(150):
            rows = await connection.fetchval("SELECT count(*) FROM example_orders")
            waiting = (await channel.declare_queue(QUEUE, passive=True)).declaration_result
            dead = (await channel.declare_queue(DEAD, passive=True)).declaration_result
            done = rows == 100 - len(BAD) and dead.message_count == len(BAD)
            if done and waiting.message_count == 0:
                return
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def report(channel: aio_pika.abc.AbstractChannel) -> None:
    connection = await asyncpg.connect(DSN)
    try:
        rows = await connection.fetchval("SELECT count(*) FROM example_orders")
        ids = await connection.fetchval("SELECT count(*) FROM example_orders_inbox")
    finally:
        await connection.close()
    print(f"stored {rows} orders; the inbox holds {ids} message ids")
    dead = await channel.declare_queue(DEAD, passive=True)
    while (letter := await dead.get(fail=False)) is not None:
        await letter.ack()
        print(f"dead-lettered {letter.message_id}: {letter.headers['x-bulkworker-error']}")


async def main() -> None:
    await prepare()
    container = Container()
    container.config.amqp_url.from_value(AMQP_URL)
    container.config.postgres_dsn.from_value(DSN)
    container.config.log_level.from_value("ERROR")  # the report below says what happened
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for name in (QUEUE, DEAD):
            await channel.queue_delete(name)
        async with Orchestrator([OrdersConsumer], container):
            await publish(channel, range(100))
            await publish(channel, range(10))  # sent twice: the same message ids
            await settled(channel)
        await report(channel)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main())

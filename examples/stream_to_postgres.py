"""Reading a RabbitMQ stream into PostgreSQL, exactly once across restarts.

Each bulk's rows and the stream offset of its last message are written in one
transaction: either both are stored or neither is. At start, ``stored_offset``
reads the offset back and the stream is read from the message after it, so a
restart (graceful or after a crash) neither skips nor repeats a message.

    bulkworker run examples.stream_to_postgres --container \
        examples.stream_to_postgres:StreamContainer

``EVENTS_STREAM`` names the stream (default ``events``), ``EVENTS_DSN`` the
database (default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from dependency_injector import providers
from dependency_injector.wiring import Provide

from framework import Actions, BulkConsumer, Container, Message

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (n bigint NOT NULL, stream_offset bigint NOT NULL);
CREATE TABLE IF NOT EXISTS stream_offsets (queue text PRIMARY KEY, last_offset bigint NOT NULL);
"""
STORE_OFFSET = """
INSERT INTO stream_offsets (queue, last_offset) VALUES ($1, $2)
ON CONFLICT (queue) DO UPDATE SET last_offset = excluded.last_offset
"""


async def open_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as connection:
            await connection.execute(SCHEMA)
        yield pool
    finally:
        await pool.close()


class StreamContainer(Container):
    database = providers.Resource(
        open_pool,
        dsn=os.environ.get("EVENTS_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )


class EventsFromStream(BulkConsumer):
    queues = [os.environ.get("EVENTS_STREAM", "events")]
    queue_arguments = {"x-queue-type": "stream"}
    stream_offset = "first"  # the first run reads the whole stream
    on_exception = Actions.REJECT  # a stream takes nothing back: dead-letter, move on
    bulk_size = 100
    flush_interval = 0.5

    def __init__(self, database: Any = Provide["database"]) -> None:
        self.database = database

    async def stored_offset(self, queue: str) -> int | None:
        """The offset of the last message stored: reading starts right after it."""
        return await self.database.fetchval(  # type: ignore[no-any-return]
            "SELECT last_offset FROM stream_offsets WHERE queue = $1", queue
        )

    async def handle(self, messages: list[Message[Any]]) -> None:
        async with self.database.acquire() as connection, connection.transaction():
            await connection.executemany(
                "INSERT INTO events (n, stream_offset) VALUES ($1, $2)",
                [(message.body["n"], message.stream_offset) for message in messages],
            )
            last = messages[-1]  # one queue, read in offset order: the highest offset
            await connection.execute(STORE_OFFSET, last.queue, last.stream_offset)

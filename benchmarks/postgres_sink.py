"""Rows per second into PostgreSQL: PostgresSink against a hand-written asyncpg COPY loop.

    python benchmarks/postgres_sink.py [--rows 100000] [--bulk 500] [--rounds 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

A database of its own is created on the server of ``--dsn`` and dropped after.
Each round writes the same rows, a bulk at a time, one transaction per bulk,
into an emptied table ``(id bigint primary key, name text, amount numeric)``:

- ``copy loop``: the baseline, ``copy_records_to_table`` in a transaction;
- ``sink``: ``PostgresSink(conflict=("id",))`` with every message settled
  (decided) as the framework would: one COPY in a savepoint;
- ``sink + inbox``: the same inside ``BulkInbox.transaction`` (message ids
  recorded in the same transaction);
- ``upsert``: ``update=("amount",)`` (COPY into a temporary table, then
  ``INSERT … ON CONFLICT DO UPDATE``).

Runs alternate; the best round of each counts. No broker is involved: this
measures the write path, what the adapter adds to it, and the inbox's cost.
"""

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from framework import Message
from framework.sinks import BulkInbox, PostgresSink
from framework.testing import FakeChannel
from framework.testing.fakes import make_message

COLUMNS = ("id", "name", "amount")
Writer = Callable[[asyncpg.Pool, list[Message[Any]]], Awaitable[None]]


def bulks(rows: int, size: int, round_number: int) -> list[list[Message[Any]]]:
    """Messages carrying the rows, ids unique to the round (the inbox sees them as new)."""
    channel = FakeChannel()
    messages = [
        make_message(
            {"id": n, "name": f"item {n}", "amount": n / 4},
            channel=channel,
            tag=n + 1,
            message_id=f"{round_number}-{n}",
        )
        for n in range(rows)
    ]
    return [messages[start : start + size] for start in range(0, rows, size)]


async def copy_loop(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
    records = [(m.body["id"], m.body["name"], m.body["amount"]) for m in messages]
    async with pool.acquire() as connection, connection.transaction():
        await connection.copy_records_to_table("items", records=records, columns=COLUMNS)


def sink_writer(sink: PostgresSink) -> Writer:
    async def write(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
        await sink.write(pool, messages)

    return write


def inbox_writer(sink: PostgresSink, inbox: BulkInbox) -> Writer:
    async def write(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
        async with inbox.transaction(pool, messages) as admitted:
            await sink.write(admitted.connection, admitted.messages)

    return write


async def timed(pool: asyncpg.Pool, writer: Writer, parts: list[list[Message[Any]]]) -> float:
    async with pool.acquire() as connection:
        await connection.execute("TRUNCATE items; TRUNCATE bulkworker_inbox")
    rows = sum(len(part) for part in parts)
    started = time.perf_counter()
    for part in parts:
        await writer(pool, part)
    elapsed = time.perf_counter() - started
    async with pool.acquire() as connection:
        assert rows == await connection.fetchval("SELECT count(*) FROM items")
    return rows / elapsed


async def measure(pool: asyncpg.Pool, rows: int, size: int, rounds: int) -> dict[str, float]:
    sink = PostgresSink("items", COLUMNS, conflict=("id",))
    inbox = BulkInbox("Bench")
    await inbox.create_table(pool)
    writers = {
        "copy loop": copy_loop,
        "sink": sink_writer(sink),
        "sink + inbox": inbox_writer(sink, inbox),
        "upsert": sink_writer(PostgresSink("items", COLUMNS, conflict=("id",), update=("amount",))),
    }
    best = dict.fromkeys(writers, 0.0)
    for round_number in range(rounds):
        for name, writer in writers.items():
            parts = bulks(rows, size, round_number)
            best[name] = max(best[name], await timed(pool, writer, parts))
    return best


async def main(arguments: argparse.Namespace) -> None:
    database = f"bulkworker_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(arguments.dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        dsn = arguments.dsn.rsplit("/", 1)[0] + f"/{database}"
        async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
            await pool.execute(
                "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, amount numeric)"
            )
            best = await measure(pool, arguments.rows, arguments.bulk, arguments.rounds)
    finally:
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
    baseline = best["copy loop"]
    print(f"{arguments.rows} rows, bulks of {arguments.bulk}, best of {arguments.rounds} rounds")
    for name, rate in best.items():
        print(f"{name:>14}: {rate:>9,.0f} rows/s  {rate / baseline:.2f}x the copy loop")
    print(f"inbox cost: {1 - best['sink + inbox'] / best['sink']:.1%} of the sink's rate")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--bulk", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))

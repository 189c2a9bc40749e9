"""Rows per second into PostgreSQL: PostgresSink against a hand-written asyncpg COPY loop.

    python benchmarks/postgres_sink.py [--rows 100000] [--bulk 500] [--rounds 3]
        [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

A database of its own is created on the server of ``--dsn`` and dropped after.
Each round writes the same rows, a bulk at a time, one transaction per bulk,
each way into an emptied table of its own ``(id bigint primary key, name
text, amount numeric)``. The ways take turns bulk by bulk, so a busy moment of
the machine weighs on all of them alike:

- ``copy loop``: the baseline, ``copy_records_to_table`` in a transaction;
- ``sink``: ``PostgresSink(conflict=("id",))`` with every message settled
  (decided) as the framework would: one COPY in a savepoint;
- ``sink + inbox``: the same inside ``BulkInbox.transaction`` (message ids
  recorded in the same transaction);
- ``upsert``: ``update=("amount",)`` (COPY into a temporary table, then
  ``INSERT … ON CONFLICT DO UPDATE``).

The best round of each counts. No broker is involved: this
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


def copy_loop(table: str) -> Writer:
    async def write(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
        records = [(m.body["id"], m.body["name"], m.body["amount"]) for m in messages]
        async with pool.acquire() as connection, connection.transaction():
            await connection.copy_records_to_table(table, records=records, columns=COLUMNS)

    return write


def sink_writer(sink: PostgresSink) -> Writer:
    async def write(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
        await sink.write(pool, messages)

    return write


def inbox_writer(sink: PostgresSink, inbox: BulkInbox) -> Writer:
    async def write(pool: asyncpg.Pool, messages: list[Message[Any]]) -> None:
        async with inbox.transaction(pool, messages) as admitted:
            await sink.write(admitted.connection, admitted.messages)

    return write


def writers() -> dict[str, Writer]:
    """Each way of writing, into a table of its own (items_0, items_1 …)."""
    inbox = BulkInbox("Bench")
    return {
        "copy loop": copy_loop("items_0"),
        "sink": sink_writer(PostgresSink("items_1", COLUMNS, conflict=("id",))),
        "sink + inbox": inbox_writer(PostgresSink("items_2", COLUMNS, conflict=("id",)), inbox),
        "upsert": sink_writer(
            PostgresSink("items_3", COLUMNS, conflict=("id",), update=("amount",))
        ),
    }


async def one_round(
    pool: asyncpg.Pool, ways: dict[str, Writer], parts: dict[str, list[list[Message[Any]]]]
) -> dict[str, float]:
    """Every bulk written by each way in turn, so that the load of the machine at each
    moment weighs on all of them alike; the seconds each way took in all."""
    tables = ", ".join(f"items_{n}" for n in range(len(ways)))
    await pool.execute(f"TRUNCATE {tables}, bulkworker_inbox")
    spent = dict.fromkeys(ways, 0.0)
    for position in range(len(parts["sink"])):
        for name, write in ways.items():
            started = time.perf_counter()
            await write(pool, parts[name][position])
            spent[name] += time.perf_counter() - started
    return spent


async def measure(pool: asyncpg.Pool, rows: int, size: int, rounds: int) -> dict[str, float]:
    ways = writers()
    for n in range(len(ways)):
        await pool.execute(
            f"CREATE TABLE items_{n} (id bigint PRIMARY KEY, name text NOT NULL, amount numeric)"
        )
    await BulkInbox("Bench").create_table(pool)
    best = dict.fromkeys(ways, 0.0)
    for round_number in range(rounds):
        parts = {name: bulks(rows, size, round_number) for name in ways}
        spent = await one_round(pool, ways, parts)
        for name, seconds in spent.items():
            best[name] = max(best[name], rows / seconds)
    return best


async def main(arguments: argparse.Namespace) -> None:
    database = f"bulkworker_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(arguments.dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        dsn = arguments.dsn.rsplit("/", 1)[0] + f"/{database}"
        async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
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

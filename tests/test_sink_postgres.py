"""PostgresSink on the real PostgreSQL: each row's outcome becomes its message's decision."""

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from framework import Actions, Message, SinkUnavailable
from framework.sinks import ItemOutcome, PostgresSink
from framework.testing import FakeChannel
from framework.testing.fakes import make_message
from tests.postgres import execute, fetch_values, orders_table, postgres_dsn

__all__ = ["postgres_dsn"]
COLUMNS = ("id", "name", "amount")


def bulk(bodies: list[Any]) -> list[Message[Any]]:
    channel = FakeChannel()
    return [make_message(body, channel=channel, tag=n + 1) for n, body in enumerate(bodies)]


def order(n: int, amount: Any = 1, name: Any = "x") -> dict[str, Any]:
    return {"id": n, "name": name, "amount": amount}


def decisions(messages: list[Message[Any]]) -> list[Actions | None]:
    return [message.decision for message in messages]


@pytest.fixture
async def table(postgres_dsn: str) -> AsyncIterator[str]:
    """A table of the test's own: id key, a non-empty name, a positive amount."""
    async with orders_table(
        postgres_dsn,
        "id bigint PRIMARY KEY, name text NOT NULL, "
        "amount numeric NOT NULL CONSTRAINT amount_positive CHECK (amount > 0)",
    ) as name:
        yield name


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=3) as pool:
        yield pool


async def stored(dsn: str, table: str, column: str = "id") -> list[Any]:
    return await fetch_values(dsn, f"SELECT {column} FROM {table} ORDER BY id")


async def test_a_bulk_of_good_rows_is_stored_and_acked(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """Every row stored; every message acked."""
    sink = PostgresSink(table, COLUMNS, conflict=("id",))
    messages = bulk([order(n) for n in range(100)])
    results = await sink.write(pool, messages)
    assert [ItemOutcome.STORED] * 100 == [result.outcome for result in results]
    assert [Actions.ACK] * 100 == decisions(messages)
    assert list(range(100)) == await stored(postgres_dsn, table)


async def test_bad_rows_are_dead_lettered_with_the_databases_reason(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """A check violation, a null and an unencodable value: those three rejected, 97 stored."""
    bodies = [order(n) for n in range(100)]
    bodies[10] = order(10, amount=-5)
    bodies[50] = order(50, name=None)
    bodies[99] = order(99, amount="lots")
    messages = bulk(bodies)
    await PostgresSink(table, COLUMNS).write(pool, messages)
    rejected = {
        n: m.decision_reason for n, m in enumerate(messages) if m.decision is Actions.REJECT
    }
    assert [10, 50, 99] == sorted(rejected)
    assert "23514" in str(rejected[10])
    assert "amount_positive" in str(rejected[10])
    assert "23502" in str(rejected[50])
    assert '"name"' in str(rejected[50])
    assert "does not fit its column" in str(rejected[99])
    assert sorted(set(range(100)) - {10, 50, 99}) == await stored(postgres_dsn, table)
    assert 97 == decisions(messages).count(Actions.ACK)


async def test_a_duplicate_key_is_acked_as_already_stored(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """With conflict keys, a row already in the table is acked, and left as it was."""
    await execute(postgres_dsn, f"INSERT INTO {table} VALUES (3, 'first', 7)")
    messages = bulk([order(n, name="second") for n in range(6)])
    results = await PostgresSink(table, COLUMNS, conflict=("id",)).write(pool, messages)
    outcomes = [result.outcome for result in results]
    assert [ItemOutcome.STORED] * 3 + [ItemOutcome.ALREADY_STORED] + [ItemOutcome.STORED] * 2 == (
        outcomes
    )
    assert [Actions.ACK] * 6 == decisions(messages)
    assert "first" == (await stored(postgres_dsn, table, "name"))[3]


async def test_a_duplicate_without_conflict_keys_is_found_and_acked(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """A plain insert meets a unique violation: halving finds the row, acked, not rejected."""
    await execute(postgres_dsn, f"INSERT INTO {table} VALUES (5, 'first', 7)")
    messages = bulk([order(n) for n in range(8)])
    results = await PostgresSink(table, COLUMNS).write(pool, messages)
    assert ItemOutcome.ALREADY_STORED == results[5].outcome
    assert "23505" in str(results[5].reason)
    assert [Actions.ACK] * 8 == decisions(messages)
    assert list(range(8)) == await stored(postgres_dsn, table)


async def test_the_same_key_twice_in_one_bulk_is_acked_twice(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """Two messages carrying one key: one row, both messages acked."""
    messages = bulk([order(1, name="a"), order(2), order(1, name="b")])
    await PostgresSink(table, COLUMNS, conflict=("id",)).write(pool, messages)
    assert [Actions.ACK] * 3 == decisions(messages)
    assert [1, 2] == await stored(postgres_dsn, table)


async def test_an_upsert_updates_the_rows_in_place(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """update columns make it an upsert: the existing row takes the new amount."""
    await execute(postgres_dsn, f"INSERT INTO {table} VALUES (1, 'first', 7)")
    sink = PostgresSink(table, COLUMNS, conflict=("id",), update=("amount",))
    messages = bulk([order(1, amount=9, name="second"), order(2, amount=3), order(3, amount=-1)])
    await sink.write(pool, messages)
    assert [Actions.ACK, Actions.ACK, Actions.REJECT] == decisions(messages)
    assert [9, 3] == await stored(postgres_dsn, table, "amount")
    assert ["first", "x"] == await stored(postgres_dsn, table, "name")


async def test_a_message_without_a_row_is_a_bad_item(pool: asyncpg.Pool, table: str) -> None:
    """The row function raising for one message rejects that message alone, saying why."""
    messages = bulk([order(1), {"id": 2}, order(3)])
    await PostgresSink(table, COLUMNS).write(pool, messages)
    assert [Actions.ACK, Actions.REJECT, Actions.ACK] == decisions(messages)
    assert "no row for this message (KeyError: 'name')" == messages[1].decision_reason


async def test_a_row_function_maps_bodies_to_columns(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """row= builds each row from the message."""
    sink = PostgresSink(table, COLUMNS, row=lambda m: (m.body["n"], f"item {m.body['n']}", 2))
    await sink.write(pool, bulk([{"n": 4}, {"n": 8}]))
    assert ["item 4", "item 8"] == await stored(postgres_dsn, table, "name")


async def test_inside_your_transaction_the_write_commits_with_it(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """On a connection in a transaction the write is a savepoint: a rollback takes it back."""
    sink = PostgresSink(table, COLUMNS)
    messages = bulk([order(1), order(2, amount=0)])
    seen_inside: list[int] = []

    async def handle(connection: asyncpg.Connection) -> None:
        async with connection.transaction():
            await sink.write(connection, messages)
            seen_inside.extend(r[0] for r in await connection.fetch(f"SELECT id FROM {table}"))
            raise RuntimeError("the handler failed after writing")

    async with pool.acquire() as connection:
        with pytest.raises(RuntimeError):
            await handle(connection)
    assert [1] == seen_inside
    assert [] == await stored(postgres_dsn, table)
    assert [Actions.ACK, Actions.REJECT] == decisions(messages)


async def test_an_unreachable_database_is_an_outage_and_decides_nothing(table: str) -> None:
    """Nothing listens on the port: SinkUnavailable, no message decided."""
    messages = bulk([order(1), order(2)])
    async with asyncpg.create_pool(
        "postgresql://postgres@127.0.0.1:9/x", min_size=0, max_size=1
    ) as pool:
        with pytest.raises(SinkUnavailable, match="PostgreSQL"):
            await PostgresSink(table, COLUMNS).write(pool, messages)
    assert [None, None] == decisions(messages)
    assert [False, False] == [m.sink_unavailable for m in messages]


async def test_a_lock_timeout_retries_the_whole_bulk(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """The table locked past lock_timeout: every message requeued, none stored."""
    messages = bulk([order(1), order(2)])
    blocker = await asyncpg.connect(postgres_dsn)
    try:
        async with blocker.transaction():
            await blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            async with pool.acquire() as connection:
                await connection.execute("SET lock_timeout = '200ms'")
                try:
                    results = await PostgresSink(table, COLUMNS).write(connection, messages)
                finally:
                    await connection.execute("RESET lock_timeout")
    finally:
        await blocker.close()
    assert [Actions.REQUEUE, Actions.REQUEUE] == decisions(messages)
    assert "55P03" in str(results[0].reason)
    assert [] == await stored(postgres_dsn, table)


async def test_a_missing_table_is_the_programs_error(pool: asyncpg.Pool) -> None:
    """Not the rows' fault: the database's error is raised, nothing is decided."""
    messages = bulk([order(1)])
    with pytest.raises(asyncpg.UndefinedTableError):
        await PostgresSink("no_such_table", COLUMNS).write(pool, messages)
    assert [None] == decisions(messages)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"columns": ()}, "columns must be column names"),
        ({"conflict": ("key",)}, "conflict names ['key'], which are not in columns"),
        ({"update": ("name",)}, "update needs conflict"),
    ],
)
def test_a_wrong_declaration_says_what_to_fix(arguments: dict[str, Any], problem: str) -> None:
    """Columns, conflict and update are checked when the sink is made."""
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        PostgresSink("orders", **{"columns": COLUMNS, **arguments})


def test_without_asyncpg_the_framework_still_imports_and_says_what_to_install() -> None:
    """No asyncpg: import framework works; PostgresSink and the pool name the extra."""
    code = (
        "import asyncio, sys\n"
        "sys.modules['asyncpg'] = None\n"
        "import framework\n"
        "from framework.sinks.pool import PoolOnDemand\n"
        "framework.Container()\n"
        "try:\n"
        "    framework.PostgresSink\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "try:\n"
        "    asyncio.run(PoolOnDemand('postgresql://h/d', 1).pool())\n"
        "except framework.ConfigurationError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "" == result.stderr
    assert [
        "framework.sinks.PostgresSink needs asyncpg: pip install 'bulkworker[postgres]'",
        "the container's postgres pool needs asyncpg: pip install 'bulkworker[postgres]'",
    ] == result.stdout.splitlines()

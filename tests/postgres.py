"""Arranging the real PostgreSQL from tests: a database of the test module's own."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

ADMIN_DSN = os.environ.get(
    "BULKWORKER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def dsn_of(database: str) -> str:
    """The DSN of ``database`` on the test server."""
    return ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


async def admin(statement: str) -> None:
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def database_fixture() -> Iterator[str]:
    """Create a database named for this run, yield its DSN, drop it afterwards."""
    name = f"bulkworker_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield dsn_of(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def postgres_dsn() -> Iterator[str]:
    """A database of the test module's own on the real PostgreSQL, dropped after it."""
    yield from database_fixture()


async def fetch_values(dsn: str, query: str) -> list[object]:
    """The first column of every row ``query`` returns."""
    connection = await asyncpg.connect(dsn)
    try:
        return [record[0] for record in await connection.fetch(query)]
    finally:
        await connection.close()


async def execute(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def orders_table(dsn: str, columns: str) -> AsyncIterator[str]:
    """A table ``orders_<random>`` with ``columns`` (SQL), dropped afterwards."""
    name = f"orders_{uuid.uuid4().hex[:8]}"
    await execute(dsn, f"CREATE TABLE {name} ({columns})")
    try:
        yield name
    finally:
        await execute(dsn, f"DROP TABLE {name}")

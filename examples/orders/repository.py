"""Orders in SQLite: one transaction per bulk, so a bulk is stored whole or not at all."""

import sqlite3
from collections.abc import AsyncIterator, Sequence

from examples.orders.models import Order

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price TEXT NOT NULL,
    placed_at TEXT NOT NULL
)
"""


class OrderRepository:
    """Stores orders; storing one twice (a redelivery) keeps the first."""

    def __init__(self, database: sqlite3.Connection) -> None:
        self._database = database

    def create_schema(self) -> None:
        with self._database:
            self._database.execute(SCHEMA)

    def store(self, orders: Sequence[Order]) -> None:
        rows = [
            (str(o.id), o.customer, o.quantity, str(o.unit_price), o.placed_at.isoformat())
            for o in orders
        ]
        with self._database:  # one transaction per bulk
            self._database.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?)", rows)

    def count(self) -> int:
        return int(self._database.execute("SELECT count(*) FROM orders").fetchone()[0])


async def open_repository(path: str) -> AsyncIterator[OrderRepository]:
    database = sqlite3.connect(path)
    try:
        yield OrderRepository(database)
    finally:
        database.close()

"""Where the items go: a SQLite table written one transaction per bulk."""

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price REAL NOT NULL,
    payload TEXT NOT NULL
)
"""


class ItemStore:
    """A SQLite table of items; saving the same item twice keeps one row (idempotent)."""

    def __init__(self, path: str) -> None:
        self.path = path
        # Bulks are written from a worker thread, one at a time under the lock.
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = asyncio.Lock()
        with self._db:
            self._db.execute(SCHEMA)

    def __repr__(self) -> str:
        return f"<ItemStore {self.path}>"

    async def save(self, items: Iterable[Mapping[str, Any]]) -> None:
        rows = [
            (str(item["id"]), item["name"], float(item["price"]), json.dumps(item))
            for item in items
        ]
        async with self._lock:
            await asyncio.to_thread(self._write, rows)

    def _write(self, rows: list[tuple[str, str, float, str]]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT INTO items (id, name, price, payload) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, price = excluded.price, "
                "payload = excluded.payload",
                rows,
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT id FROM items")}

    def sample(self, limit: int = 3) -> list[tuple[str, str, float]]:
        query = "SELECT id, name, price FROM items ORDER BY rowid LIMIT ?"
        return [tuple(row) for row in self._db.execute(query, (limit,))]

    def close(self) -> None:
        self._db.close()


async def open_store(path: str) -> AsyncIterator[ItemStore]:
    """Container resource: the store, closed on shutdown."""
    store = ItemStore(path)
    try:
        yield store
    finally:
        store.close()

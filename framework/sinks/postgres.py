"""Bulk writes into a PostgreSQL table with asyncpg, each message settled by what its row met.

::

    orders = PostgresSink("orders", ("id", "customer", "amount"), conflict=("id",))

    async def handle(self, messages, pool: asyncpg.Pool = Provide["postgres"]) -> None:
        await orders.write(pool, messages)

A bulk goes in with one ``COPY`` (asyncpg's fastest path) inside a savepoint.
If the table refuses it, the rows are found out by halving: a row that fails
alone is dead-lettered with the database's message, the others are stored.
With ``conflict`` keys a duplicate is acked as already stored; with ``update``
columns it is an upsert. Needs the ``postgres`` extra (asyncpg).
"""

import hashlib
import operator
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, cast

import asyncpg

from framework.core.message import Message
from framework.errors import SinkUnavailable
from framework.sinks.items import ItemOutcome, ItemResult, settle_items
from framework.sinks.sqlstate import outcome_of

Row = tuple[Any, ...]
# Each row with its position in the bulk.
Numbered = list[tuple[int, Row]]
ROW_NUMBER = "bulkworker_row"
# Errors raised on the client side when the server cannot be reached or went away.
CLIENT_OUTAGES = (OSError, TimeoutError, asyncpg.InterfaceError)
# A value asyncpg cannot encode for its column: wrapped when bound, raw inside COPY.
ENCODING_ERRORS = (asyncpg.DataError, TypeError, ValueError, ArithmeticError)
STORED = ItemResult(ItemOutcome.STORED)
# What a row's own error can mean for it.
ROW_OUTCOMES = (ItemOutcome.BAD_ITEM, ItemOutcome.ALREADY_STORED)


def quote(identifier: str) -> str:
    """``identifier`` as a PostgreSQL quoted identifier."""
    return '"' + identifier.replace('"', '""') + '"'


def describe(error: BaseException) -> str:
    """The database's own words for ``error``: SQLSTATE, message and detail."""
    sqlstate = getattr(error, "sqlstate", None)
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    detail = getattr(error, "detail", None)
    if sqlstate:
        described = f"{sqlstate} {text}"
    elif isinstance(error, ENCODING_ERRORS):
        described = f"a value does not fit its column ({type(error).__name__}: {text})"
    else:
        described = f"{type(error).__name__}: {text}"
    return f"{described} ({detail})" if detail else described


@asynccontextmanager
async def acquired(target: Any) -> AsyncIterator[Any]:
    """A connection: taken from ``target`` if it is a pool, else ``target`` itself."""
    if hasattr(target, "acquire"):
        async with target.acquire() as connection:
            yield connection
    else:
        yield target


@contextmanager
def outage_as_unavailable() -> Iterator[None]:
    """Raise an error that means PostgreSQL is unreachable as :class:`SinkUnavailable`."""
    try:
        yield
    except SinkUnavailable:
        raise
    except Exception as error:
        if outcome_of_error(error) is ItemOutcome.UNAVAILABLE:
            raise SinkUnavailable(f"PostgreSQL: {describe(error)}") from error
        raise


def outcome_of_error(error: Exception) -> ItemOutcome | None:
    """What ``error`` means for the rows it met; None: raise it as it is."""
    if isinstance(error, asyncpg.PostgresError):
        return outcome_of(error.sqlstate)
    if isinstance(error, ENCODING_ERRORS):
        return ItemOutcome.BAD_ITEM  # a value asyncpg could not encode for its column
    if isinstance(error, CLIENT_OUTAGES):
        return ItemOutcome.UNAVAILABLE
    return None


class PostgresSink:
    """Writes a bulk's rows into one table and settles each message by its row's outcome.

    Args:
        table: the table to write to.
        columns: the columns each row fills, in order.
        conflict: the columns of a unique key. A row whose key is in the table
            already is acked as ``ALREADY_STORED`` (``ON CONFLICT DO NOTHING``).
            Without them a unique violation is found by halving, and also acked.
        update: with ``conflict``, the columns an existing row takes from the
            new one (``ON CONFLICT … DO UPDATE``): an upsert, every row ``STORED``.
        row: the row of a message, in ``columns`` order; by default each
            column is read from the body (a key of a mapping, else an attribute
            of a ``model`` instance). A message it raises for is a bad item.
        schema: the table's schema; by default the connection's search path.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        conflict: Sequence[str] = (),
        update: Sequence[str] = (),
        row: Callable[[Message[Any]], Sequence[Any]] | None = None,
        schema: str | None = None,
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.conflict = tuple(conflict)
        self.update = tuple(update)
        self.schema = schema
        check_columns(self)
        self._row = row or self._row_of_body
        # itemgetter/attrgetter: a row per message in C, a quarter of a generator's cost.
        self._by_key = as_tuple(operator.itemgetter(*self.columns), len(self.columns))
        self._by_attribute = as_tuple(operator.attrgetter(*self.columns), len(self.columns))
        self._target = (quote(schema) + "." if schema else "") + quote(table)
        digest = hashlib.sha256(self._target.encode()).hexdigest()[:16]
        self._stage_name = f"bulkworker_stage_{digest}"
        self._stage = quote(self._stage_name)

    def __repr__(self) -> str:
        return f"<PostgresSink {self._target} columns={len(self.columns)} mode={self.mode}>"

    @property
    def mode(self) -> str:
        """``insert``, ``skip`` (duplicates acked) or ``upsert``."""
        if self.update:
            return "upsert"
        return "skip" if self.conflict else "insert"

    async def write(self, target: Any, messages: Sequence[Message[Any]]) -> list[ItemResult]:
        """Write one row per message into the table and settle each message by its outcome.

        Args:
            target: an ``asyncpg.Pool`` (a connection is taken and the write is
                its own transaction), or an ``asyncpg.Connection``: inside your
                transaction the write is a savepoint of it and commits with it.
            messages: the bulk, or the part of it to write.

        Returns:
            Each message's result, in order; the messages are decided already
            (stored and duplicates acked, bad rows dead-lettered with the
            database's reason, transient conflicts retried).

        Raises:
            SinkUnavailable: PostgreSQL could not be reached or went away
                (a connection error, a shutdown, too many connections): the
                consumer pauses and tries the bulk again, nothing is dead-lettered.
        """
        results: list[ItemResult | None] = [None] * len(messages)
        rows: Numbered = []
        for index, message in enumerate(messages):
            try:
                rows.append((index, tuple(self._row(message))))
            except Exception as error:
                reason = f"no row for this message ({type(error).__name__}: {error})"
                results[index] = ItemResult(ItemOutcome.BAD_ITEM, reason)
        if rows:
            for index, result in await self._write_rows(target, rows):
                results[index] = result
        settled = [result or STORED for result in results]
        settle_items(messages, settled)
        return settled

    async def _write_rows(self, target: Any, rows: Numbered) -> list[tuple[int, ItemResult]]:
        try:
            with outage_as_unavailable():
                async with acquired(target) as connection:
                    if connection.is_in_transaction():
                        return await self._attempt(connection, rows, staged=bool(self.update))
                    return await self._in_own_transaction(connection, rows)
        except Exception as error:
            if outcome_of_error(error) is not ItemOutcome.RETRY:
                raise
            reason = f"PostgreSQL: {describe(error)}"
            return [(index, ItemResult(ItemOutcome.RETRY, reason)) for index, _ in rows]

    async def _in_own_transaction(
        self, connection: Any, rows: Numbered
    ) -> list[tuple[int, ItemResult]]:
        """The whole bulk in one transaction; only if the table refuses it, row by row in another.

        Without a savepoint around the first try, a bulk that goes in whole costs
        what a plain ``COPY`` in a transaction does.
        """
        staged = bool(self.update)
        try:
            async with connection.transaction():
                return await self._store(connection, rows, staged)
        except Exception as error:
            if outcome_of_error(error) not in ROW_OUTCOMES:
                raise
        async with connection.transaction():
            return await self._attempt(connection, rows, staged)

    async def _attempt(
        self, connection: Any, rows: Numbered, staged: bool
    ) -> list[tuple[int, ItemResult]]:
        """Store ``rows`` in a savepoint; on a row's error, halve until each bad row is alone.

        Any other error (a conflict to retry, an outage, the program's) leaves
        every savepoint and the transaction, and is decided by the caller.
        """
        try:
            async with connection.transaction():
                return await self._store(connection, rows, staged)
        except Exception as error:
            outcome = outcome_of_error(error)
            if outcome not in ROW_OUTCOMES:
                raise
            if outcome is ItemOutcome.ALREADY_STORED and self.conflict and not staged:
                return await self._attempt(connection, rows, staged=True)
            if len(rows) == 1:
                return [(rows[0][0], ItemResult(outcome, f"PostgreSQL: {describe(error)}"))]
        middle = len(rows) // 2
        first = await self._attempt(connection, rows[:middle], staged)
        return first + await self._attempt(connection, rows[middle:], staged)

    async def _store(
        self, connection: Any, rows: Numbered, staged: bool
    ) -> list[tuple[int, ItemResult]]:
        if staged:
            return await self._insert_staged(connection, rows)
        await self._copy(connection, rows)
        return [(index, STORED) for index, _ in rows]

    async def _copy(self, connection: Any, rows: Numbered) -> None:
        await connection.copy_records_to_table(
            self.table,
            records=[row for _, row in rows],
            columns=self.columns,
            schema_name=self.schema,
        )

    async def _insert_staged(self, connection: Any, rows: Numbered) -> list[tuple[int, ItemResult]]:
        """``COPY`` into a temporary table, then ``INSERT … SELECT … ON CONFLICT`` from it."""
        await connection.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self._stage} "
            f"(LIKE {self._target} INCLUDING DEFAULTS, {ROW_NUMBER} integer) ON COMMIT DROP; "
            f"TRUNCATE {self._stage}"
        )
        await connection.copy_records_to_table(
            self._stage_name,
            records=[(*row, index) for index, row in rows],
            columns=(*self.columns, ROW_NUMBER),
        )
        if self.update:
            await connection.execute(self._insert_sql())
            return [(index, STORED) for index, _ in rows]
        inserted = {record[0] for record in await connection.fetch(self._insert_sql())}
        duplicate = ItemResult(ItemOutcome.ALREADY_STORED, "a row with this key is stored")
        return [(index, STORED if index in inserted else duplicate) for index, _ in rows]

    def _insert_sql(self) -> str:
        columns = ", ".join(map(quote, self.columns))
        keys = ", ".join(map(quote, self.conflict))
        insert = (
            f"INSERT INTO {self._target} ({columns}) SELECT {columns} FROM {self._stage} "
            f"ORDER BY {ROW_NUMBER} ON CONFLICT ({keys}) "
        )
        if self.update:
            assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in self.update)
            return insert + f"DO UPDATE SET {assignments}"
        matched = " AND ".join(
            f"s.{quote(key)} IS NOT DISTINCT FROM w.{quote(key)}" for key in self.conflict
        )
        return (
            f"WITH written AS ({insert} DO NOTHING RETURNING {keys}) "
            f"SELECT s.{ROW_NUMBER} FROM {self._stage} s JOIN written w ON {matched}"
        )

    def _row_of_body(self, message: Message[Any]) -> Row:
        body = message.body
        if isinstance(body, dict):
            return self._by_key(body)
        return self._by_attribute(body)


def as_tuple(getter: Callable[[Any], Any], width: int) -> Callable[[Any], Row]:
    """``getter`` of one or more fields, always giving a tuple (one field gives a value)."""
    if width == 1:
        return lambda body: (getter(body),)
    return cast(Callable[[Any], Row], getter)


def check_columns(sink: PostgresSink) -> None:
    """A sink's columns make sense together, or a ``ValueError`` says what to fix."""
    if not sink.columns or not all(isinstance(c, str) and c for c in sink.columns):
        raise ValueError(f"PostgresSink({sink.table!r}): columns must be column names")
    for name, chosen in (("conflict", sink.conflict), ("update", sink.update)):
        unknown = [column for column in chosen if column not in sink.columns]
        if unknown:
            raise ValueError(
                f"PostgresSink({sink.table!r}): {name} names {unknown}, which are not in columns"
            )
    if sink.update and not sink.conflict:
        raise ValueError(
            f"PostgresSink({sink.table!r}): update needs conflict, the unique key to upsert on"
        )

"""The bulk inbox: each message's effect committed once in PostgreSQL, however often it arrives.

Delivery is at least once: a worker killed after its transaction committed but
before its acks reached the broker gets the whole bulk again. Inside the same
transaction as the writes, the inbox records the bulk's message ids (one
``COPY``; when some are there already, one ``INSERT … ON CONFLICT DO NOTHING
RETURNING``): the ids recorded now are new, and only their messages are handed
on; the others were committed before and are acked as already stored. The ids
commit or roll back with the writes::

    inbox = BulkInbox()   # a class attribute of the consumer: keyed by its name

    async def handle(self, messages, pool: asyncpg.Pool = Provide["postgres"]) -> None:
        async with self.inbox.transaction(pool, messages) as admitted:
            await orders.write(admitted.connection, admitted.messages)

The table (``bulkworker_inbox``, keyed by consumer and message id, with the
time each id was recorded) is created on first use; :data:`BulkInbox.ddl`
gives the statement for a migration. :class:`InboxPruning` deletes ids older
than ``BULKWORKER_INBOX_RETENTION`` (7 days).
"""

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import asyncpg
import attrs
from dependency_injector.wiring import Provide

from framework.core.actions import Actions
from framework.core.message import Message
from framework.core.periodic import PeriodicTask
from framework.sinks.items import ItemOutcome, ItemResult, settle_item
from framework.sinks.postgres import acquired, outage_as_unavailable, quote

DEFAULT_TABLE = "bulkworker_inbox"
DUPLICATE = ItemResult(ItemOutcome.ALREADY_STORED, "committed before (bulk inbox)")
NO_ID = ItemResult(
    ItemOutcome.BAD_ITEM,
    "no message id: the bulk inbox cannot tell a redelivery from a new message; publish "
    "with a message_id, or give BulkInbox a key",
)
MessageKey = Callable[[Message[Any]], str | None]


def message_id(message: Message[Any]) -> str | None:
    """The default key: the AMQP ``message_id`` property the publisher set."""
    return message.message_id or None


def body_digest(message: Message[Any]) -> str:
    """A key from the raw body's SHA-256: two messages with the same bytes count as one."""
    return hashlib.sha256(message.raw).hexdigest()


@attrs.frozen
class Admitted:
    """What :meth:`BulkInbox.transaction` hands over: the connection, and the new messages."""

    connection: Any
    messages: list[Message[Any]]


class BulkInbox:
    """Records each bulk's message ids in a table, so a redelivered bulk is not applied twice.

    Args:
        consumer: the name the ids are kept under; as a class attribute of a
            consumer, the consumer's class name by default. Renaming it forgets
            what was recorded under the old name.
        table: the inbox table; one table can serve every consumer.
        schema: the table's schema; by default the connection's search path.
        key: a message's id; by default its ``message_id`` property. A message
            without one is dead-lettered (the inbox cannot recognise it again);
            :func:`body_digest` or a business key (``lambda m: m.body["order_id"]``)
            are the alternatives.
    """

    def __init__(
        self,
        consumer: str | None = None,
        *,
        table: str = DEFAULT_TABLE,
        schema: str | None = None,
        key: MessageKey = message_id,
    ) -> None:
        self.consumer = consumer
        self.table = table
        self.schema = schema
        self.key = key
        self._target = (quote(schema) + "." if schema else "") + quote(table)
        self._created = False
        self._bound: dict[type, BulkInbox] = {}

    def __get__(self, instance: Any, owner: type | None = None) -> "BulkInbox":
        # Unnamed, as a class attribute: each consumer class keeps its ids under its own name.
        if instance is None or self.consumer is not None:
            return self
        cls = type(instance)
        if cls not in self._bound:
            self._bound[cls] = BulkInbox(
                cls.__name__, table=self.table, schema=self.schema, key=self.key
            )
        return self._bound[cls]

    def __set__(self, instance: Any, value: Any) -> None:
        # A declaration of the class, like the consumer's settings.
        raise AttributeError("a consumer's inbox is declared on its class, not set on an instance")

    def __repr__(self) -> str:
        return f"<BulkInbox {self._target} consumer={self.consumer!r}>"

    @property
    def ddl(self) -> str:
        """The statements that create the inbox table and its index, for a migration."""
        index = quote(f"{self.table}_recorded_at")
        # BRIN: ids are appended in time order, so a block-range index stays tiny,
        # costs next to nothing per insert, and still lets pruning skip recent blocks.
        return (
            f"CREATE TABLE IF NOT EXISTS {self._target} ("
            "consumer text NOT NULL, message_id text NOT NULL, "
            "recorded_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (consumer, message_id)); "
            f"CREATE INDEX IF NOT EXISTS {index} ON {self._target} USING brin (recorded_at)"
        )

    @asynccontextmanager
    async def transaction(
        self, target: Any, messages: Sequence[Message[Any]]
    ) -> AsyncIterator[Admitted]:
        """A transaction in which only the messages not seen before are handed on.

        Args:
            target: an ``asyncpg.Pool`` (a connection is taken for it) or an
                ``asyncpg.Connection`` (not yet in a transaction, or the
                inbox becomes a savepoint of yours).
            messages: the bulk.

        Yields:
            The connection to write with, and the new messages; the others are
            acked already. When the block ends, the ids of new messages that
            were rejected, requeued or marked unavailable are forgotten (a
            retry or a replayed dead letter is applied again), then the
            transaction commits; an exception rolls it all back.

        Raises:
            SinkUnavailable: PostgreSQL could not be reached or went away.
        """
        with outage_as_unavailable():
            await self.create_table(target)
            async with acquired(target) as connection, connection.transaction():
                fresh = await self.admit(connection, messages)
                yield Admitted(connection, fresh)
                await self.forget_unstored(connection, fresh)

    async def admit(self, connection: Any, messages: Sequence[Message[Any]]) -> list[Message[Any]]:
        """Record the ids, ack the messages seen before, and return the new ones.

        Call it inside the transaction that writes the new messages' effects;
        :meth:`transaction` does both.
        """
        if self.consumer is None:
            raise TypeError(
                "BulkInbox() has no consumer name: declare it as an attribute of the consumer "
                "class (self.inbox), or pass consumer='…'"
            )
        await self.create_table(connection)
        keyed = self._keyed(messages)
        new = await self._record(connection, [key for key, _ in keyed])
        fresh = []
        for key, message in keyed:
            if key in new:
                new.discard(key)  # the same id twice in one bulk: the first is new
                fresh.append(message)
            else:
                settle_item(message, DUPLICATE)
        return fresh

    async def _record(self, connection: Any, keys: list[str]) -> set[str]:
        """Record ``keys``; the ones not recorded before.

        A redelivery is the exception: every id is first sent with one ``COPY``
        in a savepoint (a third faster than the ``INSERT``); only when one is
        there already does the ``INSERT … ON CONFLICT DO NOTHING RETURNING`` say which.
        """
        if not keys:
            return set()
        with contextlib.suppress(asyncpg.UniqueViolationError):  # then the INSERT below
            async with connection.transaction():
                await connection.copy_records_to_table(
                    self.table,
                    records=[(self.consumer, key) for key in keys],
                    columns=("consumer", "message_id"),
                    schema_name=self.schema,
                )
            return set(keys)
        rows = await connection.fetch(
            f"INSERT INTO {self._target} (consumer, message_id) "
            "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING message_id",
            self.consumer,
            list(dict.fromkeys(keys)),
        )
        return {row[0] for row in rows}

    async def forget_unstored(self, connection: Any, messages: Sequence[Message[Any]]) -> None:
        """Forget the ids of ``messages`` that were not stored: rejected, requeued, unavailable."""
        unstored = [
            key
            for message in messages
            if not stored(message) and (key := self.key(message)) is not None
        ]
        if unstored:
            await connection.execute(
                f"DELETE FROM {self._target} WHERE consumer = $1 AND message_id = ANY($2::text[])",
                self.consumer,
                unstored,
            )

    async def prune(self, target: Any, older_than: float) -> int:
        """Delete the ids recorded more than ``older_than`` seconds ago; how many went."""
        await self.create_table(target)
        async with acquired(target) as connection:
            status = await connection.execute(
                f"DELETE FROM {self._target} WHERE recorded_at < now() - make_interval(secs => $1)",
                older_than,
            )
        return int(status.split()[-1])

    def _keyed(self, messages: Sequence[Message[Any]]) -> list[tuple[str, Message[Any]]]:
        keyed = []
        for message in messages:
            key = self.key(message)
            if key is None:
                settle_item(message, NO_ID)
            else:
                keyed.append((str(key), message))
        return keyed

    async def create_table(self, target: Any) -> None:
        """Create the table if it does not exist (once per process, outside a transaction).

        Inside a transaction of yours it is created in a savepoint, and again
        next time, since your transaction may still roll it back.
        """
        if self._created:
            return
        async with acquired(target) as connection:
            try:
                async with connection.transaction():
                    await connection.execute(self.ddl)
            except (asyncpg.UniqueViolationError, asyncpg.DuplicateTableError):
                pass  # another worker created it at the same moment
            self._created = not connection.is_in_transaction()


def stored(message: Message[Any]) -> bool:
    """Whether ``message`` ends stored: acked, or undecided (``on_success`` applies)."""
    return not message.sink_unavailable and message.decision in (None, Actions.ACK)


class InboxPruning(PeriodicTask, abstract=True):
    """Deletes inbox ids older than ``BULKWORKER_INBOX_RETENTION``; declare it in your app::

        class PruneInbox(InboxPruning):
            interval = 3600.0

    Attributes:
        table: the inbox table it prunes (every consumer's ids in it).
        schema: that table's schema.
    """

    interval: ClassVar[float] = 3600.0
    table: ClassVar[str] = DEFAULT_TABLE
    schema: ClassVar[str | None] = None

    async def run(
        self,
        pool: Any = Provide["postgres"],
        settings: Any = Provide["settings"],
        log: Any = Provide["logger"],
    ) -> None:
        inbox = BulkInbox(table=self.table, schema=self.schema)
        deleted = await inbox.prune(pool, settings.inbox_retention)
        await log.info(
            "inbox pruned",
            extra={"table": self.table, "deleted": deleted, "older_than": settings.inbox_retention},
        )

"""The bulk inbox on the real PostgreSQL: new ids handed on, seen ids acked, old ids pruned."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from framework import Actions, BulkConsumer, Message, SinkUnavailable
from framework.sinks import BulkInbox, InboxPruning
from framework.sinks.inbox import body_digest
from framework.testing import FakeChannel, RecordingLog
from framework.testing.fakes import make_message
from tests.postgres import fetch_values, postgres_dsn

__all__ = ["postgres_dsn"]


def bulk(ids: list[str | None], channel: FakeChannel | None = None) -> list[Message[Any]]:
    channel = channel or FakeChannel()
    return [
        make_message({"n": n}, channel=channel, tag=n + 1, message_id=message_id)
        for n, message_id in enumerate(ids)
    ]


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2) as pool:
        yield pool


@pytest.fixture
def table() -> str:
    return f"inbox_{uuid.uuid4().hex[:8]}"


async def test_only_ids_not_seen_before_are_handed_on(pool: asyncpg.Pool, table: str) -> None:
    """A second delivery of a bulk: its messages are acked and none is handed on."""
    inbox = BulkInbox("Orders", table=table)
    first = bulk(["a", "b", "c"])
    async with inbox.transaction(pool, first) as admitted:
        assert first == admitted.messages
    again = bulk(["b", "d", "c"])
    async with inbox.transaction(pool, again) as admitted:
        assert [again[1]] == admitted.messages
    assert [Actions.ACK, None, Actions.ACK] == [m.decision for m in again]


async def test_ids_are_kept_per_consumer(pool: asyncpg.Pool, table: str) -> None:
    """One table, two consumers: the same id is new to each."""
    for consumer in ("Orders", "Invoices"):
        async with BulkInbox(consumer, table=table).transaction(pool, bulk(["a"])) as admitted:
            assert 1 == len(admitted.messages)


async def test_a_rolled_back_transaction_records_nothing(pool: asyncpg.Pool, table: str) -> None:
    """handle fails after admit: the ids roll back with the writes, the bulk is new again."""
    inbox = BulkInbox("Orders", table=table)
    with pytest.raises(ConnectionError):
        async with inbox.transaction(pool, bulk(["a", "b"])):
            raise ConnectionError("the write failed")
    async with inbox.transaction(pool, bulk(["a", "b"])) as admitted:
        assert 2 == len(admitted.messages)


async def test_rejected_and_requeued_messages_are_forgotten(pool: asyncpg.Pool, table: str) -> None:
    """A dead letter replayed, or a retry, is applied again; a stored one is not."""
    inbox = BulkInbox("Orders", table=table)
    messages = bulk(["stored", "rejected", "retried", "held"])
    async with inbox.transaction(pool, messages):
        messages[0].ack()
        messages[1].reject(reason="bad")
        messages[2].requeue()
        messages[3].unavailable("down")
    again = bulk(["stored", "rejected", "retried", "held"])
    async with inbox.transaction(pool, again) as admitted:
        assert again[1:] == admitted.messages


async def test_the_same_id_twice_in_one_bulk_is_handed_on_once(
    pool: asyncpg.Pool, table: str
) -> None:
    """A publisher that sent one message twice: the first copy is new, the second acked."""
    messages = bulk(["a", "a"])
    async with BulkInbox("Orders", table=table).transaction(pool, messages) as admitted:
        assert [messages[0]] == admitted.messages
    assert Actions.ACK == messages[1].decision


async def test_a_message_without_an_id_is_dead_lettered(pool: asyncpg.Pool, table: str) -> None:
    """No message_id and no key: rejected with a reason that says what to do."""
    messages = bulk([None, "b"])
    async with BulkInbox("Orders", table=table).transaction(pool, messages) as admitted:
        assert [messages[1]] == admitted.messages
    assert Actions.REJECT == messages[0].decision
    assert "publish with a message_id, or give BulkInbox a key" in str(messages[0].decision_reason)


async def test_a_key_of_your_own_replaces_the_message_id(pool: asyncpg.Pool, table: str) -> None:
    """key=body_digest: the same bytes twice are one message, ids or not."""
    inbox = BulkInbox("Orders", table=table, key=body_digest)
    async with inbox.transaction(pool, bulk([None])):
        pass
    async with inbox.transaction(pool, bulk([None])) as admitted:
        assert [] == admitted.messages


def test_as_a_class_attribute_it_keeps_ids_under_each_consumers_name() -> None:
    """An unnamed inbox on a base class names itself after the consumer using it."""

    class Base(BulkConsumer, abstract=True):
        inbox = BulkInbox()

    class Orders(Base):
        queues = ["orders"]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    assert "Orders" == Orders().inbox.consumer
    assert Orders().inbox is Orders().inbox


async def test_pruning_deletes_only_ids_older_than_the_retention(
    pool: asyncpg.Pool, table: str, postgres_dsn: str
) -> None:
    """Ids recorded 8 days ago go, those of 6 days ago and of now stay."""
    inbox = BulkInbox("Orders", table=table)
    async with inbox.transaction(pool, bulk(["old", "recent", "now"])):
        pass
    async with pool.acquire() as connection:
        await connection.execute(
            f"UPDATE {table} SET recorded_at = now() - interval '8 days' WHERE message_id = 'old'"
        )
        await connection.execute(
            f"UPDATE {table} SET recorded_at = now() - interval '6 days' "
            "WHERE message_id = 'recent'"
        )

    class Settings:
        inbox_retention = 7 * 24 * 3600.0

    class Prune(InboxPruning):
        pass

    Prune.table = table
    log = RecordingLog()
    await Prune().run(pool, Settings(), log)
    kept = await fetch_values(postgres_dsn, f"SELECT message_id FROM {table} ORDER BY 1")
    assert ["now", "recent"] == kept
    assert ["inbox pruned"] == log.messages("info")


async def test_an_unreachable_database_is_an_outage(table: str) -> None:
    """Nothing listens: SinkUnavailable, whatever the consumer's outage_errors, nothing decided."""
    messages = bulk(["a"])
    async with asyncpg.create_pool(
        "postgresql://postgres@127.0.0.1:9/x", min_size=0, max_size=1
    ) as pool:
        with pytest.raises(SinkUnavailable, match="PostgreSQL"):
            async with BulkInbox("Orders", table=table).transaction(pool, messages):
                pass
    assert [None] == [m.decision for m in messages]

"""MongoDB ``BulkWriteError`` details become per-message outcomes.

No MongoDB server runs here: the details are recorded in the format the server
and pymongo document (tests/recorded/mongodb_*.json), raised as pymongo's own
``BulkWriteError``; the network errors come from the real ``AsyncMongoClient``.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect, BulkWriteError, WriteConcernError

from framework import Actions
from framework.errors import SinkUnavailable
from framework.sinks import ItemOutcome, ItemResult
from framework.sinks.mongodb import insert_documents, write_results
from framework.testing import FakeChannel
from framework.testing.fakes import make_message

RECORDED = Path(__file__).parent / "recorded"
STORED = ItemResult(ItemOutcome.STORED)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"mongodb_{name}.json").read_text())


def messages(count: int) -> list:
    channel = FakeChannel()
    return [
        make_message({"n": n}, channel=channel, tag=n + 1, message_id=f"m-{n + 1}")
        for n in range(count)
    ]


def test_each_write_error_code_has_its_outcome() -> None:
    """11000 already stored; 121 and unknown codes bad; WriteConflict retried; the rest stored."""
    results = write_results(5, recorded("unordered"), ordered=False)
    assert [
        ItemOutcome.STORED,
        ItemOutcome.ALREADY_STORED,  # 11000 duplicate key
        ItemOutcome.BAD_ITEM,  # 121 document validation
        ItemOutcome.RETRY,  # 112 WriteConflict
        ItemOutcome.BAD_ITEM,  # 17419 document too large
    ] == [r.outcome for r in results]


def test_a_validation_failure_names_the_rule_the_document_broke() -> None:
    """The dead letter carries the code, the message and the schema details."""
    reason = write_results(5, recorded("unordered"), ordered=False)[2].reason or ""
    assert reason.startswith("121 Document failed validation {")
    assert '"propertyName":"amount"' in reason
    assert '"consideredValue":-5' in reason


def test_an_ordered_write_leaves_the_writes_after_its_first_error_unattempted() -> None:
    """ordered=True: before the error stored, at it by its code, after it retried."""
    results = write_results(4, recorded("ordered"), ordered=True)
    skipped = ItemResult(ItemOutcome.RETRY, "not attempted: the ordered write stopped at 1")
    assert ItemOutcome.ALREADY_STORED == results[1].outcome
    assert [STORED, skipped, skipped] == [results[0], results[2], results[3]]


def test_a_write_concern_error_holds_every_write_that_was_not_refused() -> None:
    """Unconfirmed writes are unavailable (the breaker pauses); the bad one stays bad."""
    results = write_results(3, recorded("write_concern"), ordered=False)
    assert [ItemOutcome.UNAVAILABLE, ItemOutcome.UNAVAILABLE, ItemOutcome.BAD_ITEM] == [
        r.outcome for r in results
    ]
    assert "write concern not satisfied: 64 waiting for replication timed out" == (
        results[0].reason
    )


def test_no_details_means_every_write_stored() -> None:
    """A bulk without errors: each write stored."""
    assert [STORED] * 2 == write_results(2, None, ordered=True)


def test_a_write_error_outside_the_bulk_is_an_error() -> None:
    """Details that do not line up with the request decide nothing."""
    with pytest.raises(ValueError, match="names write 1, 1 writes were sent"):
        write_results(1, recorded("ordered"), ordered=True)


class FakeCollection:
    """Answers each ``insert_many`` with the next recorded outcome; records what was sent."""

    def __init__(self, *answers: BaseException | None) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[list[dict[str, Any]], bool]] = []

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        self.sent.append((documents, ordered))
        answer = self.answers.pop(0)
        if answer is not None:
            raise answer


async def test_insert_documents_settles_each_message_by_its_write() -> None:
    """Stored and duplicate acked, the invalid one dead-lettered, WriteConflict requeued."""
    bulk = messages(5)
    collection = FakeCollection(BulkWriteError(recorded("unordered")))
    await insert_documents(collection, bulk)
    assert [Actions.ACK, Actions.ACK, Actions.REJECT, Actions.REQUEUE, Actions.REJECT] == [
        m.decision for m in bulk
    ]
    [(documents, ordered)] = collection.sent
    assert ({"_id": "m-1", "n": 0}, False) == (documents[0], ordered)
    assert {"n": 0} == bulk[0].body  # the document is a copy: the body keeps no _id


async def test_an_ordered_insert_sends_the_unattempted_writes_again_at_once() -> None:
    """After the stop at write 1, writes 2 and 3 go in a second insert_many."""
    bulk = messages(4)
    collection = FakeCollection(BulkWriteError(recorded("ordered")), None)
    results = await insert_documents(collection, bulk, ordered=True)
    assert [STORED, ItemOutcome.ALREADY_STORED, STORED, STORED] == [
        results[0],
        results[1].outcome,
        results[2],
        results[3],
    ]
    assert [["m-1", "m-2", "m-3", "m-4"], ["m-3", "m-4"]] == [
        [d["_id"] for d in documents] for documents, _ in collection.sent
    ]
    assert [Actions.ACK] * 4 == [m.decision for m in bulk]


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("connection closed"),
        WriteConcernError("waiting for replication timed out", 64, {}),
    ],
)
async def test_a_network_or_write_concern_failure_raises_sink_unavailable(
    error: Exception,
) -> None:
    """The breaker holds the whole bulk; nothing is decided."""
    bulk = messages(2)
    with pytest.raises(SinkUnavailable, match="insert_many failed"):
        await insert_documents(FakeCollection(error), bulk)
    assert [None, None] == [m.decision for m in bulk]


async def test_a_message_without_an_id_is_refused_before_inserting() -> None:
    """No message id: dead-lettered with why; the others inserted."""
    channel = FakeChannel()
    bulk = [
        make_message({"n": 1}, channel=channel, tag=1, message_id="m-1"),
        make_message({"n": 2}, channel=channel, tag=2),
    ]
    collection = FakeCollection(None)
    results = await insert_documents(collection, bulk)
    assert [Actions.ACK, Actions.REJECT] == [m.decision for m in bulk]
    assert "no message_id" in (results[1].reason or "")
    assert [[{"_id": "m-1", "n": 1}]] == [documents for documents, _ in collection.sent]


async def test_the_id_can_come_from_a_field_of_the_body() -> None:
    """``id_field=`` makes that field the ``_id``."""
    channel = FakeChannel()
    bulk = [make_message({"order": "o-7"}, channel=channel, tag=1)]
    collection = FakeCollection(None)
    await insert_documents(collection, bulk, id_field="order")
    assert [[{"_id": "o-7", "order": "o-7"}]] == [documents for documents, _ in collection.sent]


# Nothing listens on this socket path. Not a closed TCP port: pymongo's monitor, cancelled
# by close() while a TCP connect is under way, drops that socket unclosed (its
# ResourceWarning then fails whichever test runs when it is collected); a missing
# socket file fails the connect at once, and pymongo closes the socket.
NO_SERVER = "mongodb://%2Ftmp%2Fbulkworker-no-mongodb.sock"


async def test_the_real_client_with_no_server_is_an_outage() -> None:
    """Nothing listening: ServerSelectionTimeoutError becomes SinkUnavailable."""
    client: AsyncMongoClient[Any] = AsyncMongoClient(NO_SERVER, serverSelectionTimeoutMS=200)
    try:
        with pytest.raises(SinkUnavailable, match="ServerSelectionTimeoutError"):
            await insert_documents(client["shop"]["orders"], messages(1))
    finally:
        await client.close()

"""MongoDB bulk writes: a ``BulkWriteError`` becomes one outcome per document.

``insert_many`` and ``bulk_write`` raise ``BulkWriteError`` when some writes
failed; its ``details`` hold ``writeErrors`` (each with the ``index`` of the
write in the request, a ``code`` and an ``errmsg``) and ``writeConcernErrors``.
:func:`write_results` reads those details into one :class:`ItemResult` per
write; :func:`insert_documents` inserts a bulk's messages and settles each.

=================================  ==============================================
what happened to the write         outcome
=================================  ==============================================
no error                           ``STORED``
11000 duplicate key                ``ALREADY_STORED``
a transient code (:data:`RETRIED`) ``RETRY``
121 validation, any other code     ``BAD_ITEM``, reason ``code: errmsg``
after the first error, ordered     ``RETRY`` (never attempted)
any ``writeConcernErrors``         ``UNAVAILABLE`` for each write that was not bad
network error, no server           ``UNAVAILABLE`` (raised as ``SinkUnavailable``)
=================================  ==============================================
"""

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from framework.core.message import Message
from framework.errors import SinkUnavailable
from framework.sinks.documents import DocumentOf, prepare, settle_prepared
from framework.sinks.items import ItemOutcome, ItemResult

# E11000 and its historical twins: the _id (or a unique key) is stored already.
DUPLICATE_KEY = frozenset({11000, 11001, 12582})
# Failures of the moment, not of the document: the retryable-writes codes
# (primary stepped down, shutting down, host unreachable, network timeout…),
# WriteConflict (112), MaxTimeMSExpired (50) and ExceededTimeLimit (262).
RETRIED = frozenset({6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
VALIDATION_FAILED = 121


def write_results(
    sent: int, details: Mapping[str, Any] | None, *, ordered: bool
) -> list[ItemResult]:
    """One result per write sent, in order, from ``BulkWriteError.details``.

    With ``ordered=True`` the server stops at the first error: the writes after
    it were never attempted and come back as ``RETRY`` (:func:`insert_documents`
    sends them again at once instead). Write concern errors mean the writes
    reached the primary but the replica set could not confirm them: every write
    that was not refused is ``UNAVAILABLE``, so the breaker pauses and the same
    bulk is sent again (a duplicate key then reads as already stored).

    Raises:
        ValueError: a write error points outside the writes sent.
    """
    details = details or {}
    results = [ItemResult(ItemOutcome.STORED)] * sent
    errors = sorted(details.get("writeErrors") or [], key=lambda e: int(e["index"]))
    for error in errors:
        index = int(error["index"])
        if not 0 <= index < sent:
            raise ValueError(f"a write error names write {index}, {sent} writes were sent")
        results[index] = write_error_result(error)
    stop = stopped_at(details) if ordered else None
    if stop is not None:
        skipped = ItemResult(
            ItemOutcome.RETRY, f"not attempted: the ordered write stopped at {stop}"
        )
        results[stop + 1 :] = [skipped] * (sent - stop - 1)
    concern = details.get("writeConcernErrors") or []
    if concern:
        reason = "write concern not satisfied: " + "; ".join(map(reason_of, concern))
        unconfirmed = ItemResult(ItemOutcome.UNAVAILABLE, reason)
        results = [r if r.outcome is ItemOutcome.BAD_ITEM else unconfirmed for r in results]
    return results


def write_error_result(error: Mapping[str, Any]) -> ItemResult:
    """What one entry of ``writeErrors`` means for its write."""
    code = error.get("code")
    if code in DUPLICATE_KEY:
        return ItemResult(ItemOutcome.ALREADY_STORED, reason_of(error))
    if code in RETRIED:
        return ItemResult(ItemOutcome.RETRY, reason_of(error))
    return ItemResult(ItemOutcome.BAD_ITEM, reason_of(error))


def reason_of(error: Mapping[str, Any]) -> str:
    """``121 Document failed validation {"operatorName": ...}``: code, message, the details."""
    reason = f"{error.get('code')} {error.get('errmsg', '')}".rstrip()
    details = (error.get("errInfo") or {}).get("details")
    if details:
        reason += " " + json.dumps(details, default=str, separators=(",", ":"))
    return reason


def outage_errors() -> tuple[type[BaseException], ...]:
    """pymongo's "the server cannot be reached or cannot confirm" errors.

    ``ConnectionFailure`` covers ``AutoReconnect``, ``NetworkTimeout``,
    ``NotPrimaryError``, ``ServerSelectionTimeoutError`` and
    ``WaitQueueTimeoutError``; ``WriteConcernError`` (and ``WTimeoutError``) is a
    single write the replica set could not confirm.
    """
    from pymongo import errors

    return (errors.ConnectionFailure, errors.WriteConcernError)


async def insert_documents(
    collection: Any,
    messages: Sequence[Message[Any]],
    *,
    id_field: str | None = None,
    document: DocumentOf | None = None,
    ordered: bool = False,
) -> list[ItemResult]:
    """Insert ``messages`` with ``insert_many`` and settle each by its write's outcome.

    Each document's ``_id`` is the message id (or the body's ``id_field``), so
    a redelivered message is a duplicate key: acked as already stored.

    Args:
        collection: a pymongo ``AsyncCollection`` (``AsyncMongoClient()[db][name]``).
        messages: the bulk ``handle`` was given.
        id_field: the body field holding the ``_id``; by default the message id.
            A message with neither is dead-lettered.
        document: turns a message into its document; by default the body.
        ordered: stop at the first error; the writes after it are sent again.

    Returns:
        Each message's result, in order; the messages are decided already.

    Raises:
        SinkUnavailable: no server could be reached, or the connection broke
            mid-write: the consumer's breaker holds the bulk.
    """
    prepared = prepare(messages, id_field, document)
    documents = [{"_id": key, **body} for key, body in prepared.documents]
    written = await insert_all(collection, documents, ordered)
    return settle_prepared(messages, prepared, written)


async def insert_all(
    collection: Any, documents: list[dict[str, Any]], ordered: bool
) -> list[ItemResult]:
    """Each document's result; what an ordered write left unattempted is sent again.

    Each round settles at least the write it stopped at, so N documents take at
    most N rounds.
    """
    written: list[ItemResult] = []
    while documents:
        results, stop = await insert_round(collection, documents, ordered)
        if stop is None:
            return written + results
        written += results[: stop + 1]
        documents = documents[stop + 1 :]
    return written


async def insert_round(
    collection: Any, documents: list[dict[str, Any]], ordered: bool
) -> tuple[list[ItemResult], int | None]:
    """One ``insert_many``: each document's result, and where an ordered write stopped."""
    from pymongo.errors import BulkWriteError

    try:
        await collection.insert_many(documents, ordered=ordered)
    except BulkWriteError as error:
        results = write_results(len(documents), error.details, ordered=ordered)
        return results, stopped_at(error.details) if ordered else None
    except outage_errors() as error:
        raise SinkUnavailable(f"insert_many failed: {error!r}") from error
    return [ItemResult(ItemOutcome.STORED)] * len(documents), None


def stopped_at(details: Mapping[str, Any] | None) -> int | None:
    """The index of the first write error: where an ordered write stopped."""
    indexes = [int(e["index"]) for e in (details or {}).get("writeErrors") or []]
    return min(indexes) if indexes else None


@asynccontextmanager
async def open_client(url: str) -> AsyncIterator[Any]:
    """A pymongo ``AsyncMongoClient`` on the connection string ``url``, closed on exit.

    The client connects in the background on its first operation, so opening
    it never waits for the server.
    """
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    try:
        yield client
    finally:
        await client.close()

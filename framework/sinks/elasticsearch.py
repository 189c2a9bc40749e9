"""Elasticsearch and OpenSearch ``_bulk``: the actions to send, and each item's outcome.

``_bulk`` answers HTTP 200 even when items failed: ``errors: true`` at the top
and, under ``items``, one entry per action, in request order, with its own
``status``. :func:`bulk_results` reads that answer (the dict the official
``elasticsearch`` and ``opensearch-py`` clients return) into one
:class:`ItemResult` per action; :func:`write_bulk` builds the actions from a
bulk's messages, sends them with the client, and settles each message.

===========================  ====================================================
item status                  outcome
===========================  ====================================================
2xx                          ``STORED``
404 on ``delete``, no error  ``ALREADY_STORED`` (the document is already gone)
409 on ``create``/``index``  ``ALREADY_STORED`` (see :data:`CONFLICTS`)
409 on ``update``/``delete`` ``RETRY`` (another writer changed the document)
other 4xx                    ``BAD_ITEM``, reason ``type: reason``
429, 5xx                     ``RETRY``; ``UNAVAILABLE`` when every item got one
===========================  ====================================================
"""

import contextlib
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from framework.core.message import Message
from framework.errors import SinkUnavailable
from framework.sinks.documents import DocumentOf, prepare, settle_prepared
from framework.sinks.items import ItemOutcome, ItemResult

OPERATIONS = ("create", "index", "update", "delete")
# What a 409 version conflict means, by action. ``create`` with the message's
# id conflicts only when that id is stored already: a redelivery, done before.
# ``index`` conflicts only under external versioning (or if_seq_no), when the
# stored version is as new or newer: nothing left to do either. ``update`` and
# ``delete`` conflict when another writer changed the document meanwhile
# (retry_on_conflict exhausted): trying again later is what works.
CONFLICTS = {
    "create": ItemOutcome.ALREADY_STORED,
    "index": ItemOutcome.ALREADY_STORED,
    "update": ItemOutcome.RETRY,
    "delete": ItemOutcome.RETRY,
}
# The whole request refused for now: the cluster is overloaded or down.
OUTAGE_STATUSES = frozenset({429, 502, 503, 504})


def bulk_actions(
    documents: Sequence[tuple[str, Mapping[str, Any]]], *, index: str, op_type: str = "create"
) -> list[dict[str, Any]]:
    """The ``_bulk`` body for ``(id, document)`` pairs, as the clients' ``bulk(operations=...)``
    take it: an action line, then its source (``update`` sends ``doc`` with ``doc_as_upsert``).

    The client serializes it to NDJSON.
    """
    if op_type not in ("create", "index", "update"):
        raise ValueError(f"op_type must be 'create', 'index' or 'update', got {op_type!r}")
    actions: list[dict[str, Any]] = []
    for document_id, document in documents:
        actions.append({op_type: {"_index": index, "_id": document_id}})
        source = {"doc": document, "doc_as_upsert": True} if op_type == "update" else document
        actions.append(dict(source))
    return actions


def bulk_results(
    response: Mapping[str, Any],
    sent: int,
    *,
    conflicts: Mapping[str, ItemOutcome] | None = None,
) -> list[ItemResult]:
    """One result per action sent, in order, from a ``_bulk`` response.

    Args:
        response: the response body (``client.bulk(...).body``, or the
            client's response object itself).
        sent: how many actions the request held.
        conflicts: what a 409 means, by action; defaults to :data:`CONFLICTS`.

    Raises:
        ValueError: the response holds another number of items than were sent,
            or an item without a known action or status; nothing is decided.
    """
    body = getattr(response, "body", response)
    items = body.get("items") if isinstance(body, Mapping) else None
    if not isinstance(items, list) or len(items) != sent:
        count = len(items) if isinstance(items, list) else "no"
        raise ValueError(f"the _bulk response has {count} items, {sent} actions were sent")
    meanings = {**CONFLICTS, **(conflicts or {})}
    answers = [answer_of(item) for item in items]
    if all(refused(status) for _, status, _ in answers):
        # Every item throttled or failed by the cluster: the sink is down, not
        # these items. Held for the breaker's probe, so the consumer pauses
        # until the cluster takes writes again; when only some items were
        # refused, those are retried (counted against max_retries).
        return [ItemResult(ItemOutcome.UNAVAILABLE, reason_of(s, e)) for _, s, e in answers]
    return [outcome_of(*answer, meanings) for answer in answers]


def answer_of(item: Any) -> tuple[str, int, Any]:
    """``(action, status, error)`` of one entry of ``items``: ``{"create": {"status": 201}}``."""
    if isinstance(item, Mapping) and len(item) == 1:
        [(operation, answer)] = item.items()
        if operation in OPERATIONS and isinstance(answer, Mapping):
            status = answer.get("status")
            if isinstance(status, int) and not isinstance(status, bool):
                return operation, status, answer.get("error")
    raise ValueError(f"a _bulk response item names no known action and status: {item!r}")


def outcome_of(
    operation: str, status: int, error: Any, conflicts: Mapping[str, ItemOutcome]
) -> ItemResult:
    """What one item's status means (see the table above)."""
    if 200 <= status < 300:
        return ItemResult(ItemOutcome.STORED)
    reason = reason_of(status, error)
    if status == 404 and operation == "delete" and error is None:
        return ItemResult(ItemOutcome.ALREADY_STORED, reason)
    if status == 409:
        return ItemResult(conflicts[operation], reason)
    if refused(status):
        return ItemResult(ItemOutcome.RETRY, reason)
    return ItemResult(ItemOutcome.BAD_ITEM, reason)


def refused(status: int) -> bool:
    """Throttled (429) or failed by the cluster (5xx): not the item's fault."""
    return status == 429 or status >= 500


def reason_of(status: int, error: Any) -> str:
    """``404 document_missing_exception: [5]: document missing``, with what caused it."""
    if not isinstance(error, Mapping):
        return f"{status} {error}" if error else str(status)
    reason = f"{status} {error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, Mapping):
        reason += f" (caused by {cause.get('type', 'error')}: {cause.get('reason', '')})"
    return reason


def is_outage(error: BaseException) -> bool:
    """Whether the whole request failed because the cluster is unreachable, overloaded or down.

    Connection errors and timeouts of ``elasticsearch`` (``elastic_transport``)
    and ``opensearch-py``, and an HTTP 429/502/503/504 answer to the request.
    """
    if isinstance(error, connection_errors()):
        return True
    meta = getattr(error, "meta", None)  # elasticsearch's ApiError
    status = getattr(meta, "status", None) if meta is not None else None
    if status is None:
        status = getattr(error, "status_code", None)  # opensearch-py's TransportError
    return isinstance(status, int) and status in OUTAGE_STATUSES


@functools.cache
def connection_errors() -> tuple[type[BaseException], ...]:
    """The installed clients' "could not talk to the cluster" errors (looked up once)."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    with contextlib.suppress(ImportError):
        import elastic_transport

        found += [elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout]
    with contextlib.suppress(ImportError):
        import opensearchpy

        found += [opensearchpy.ConnectionError, opensearchpy.ConnectionTimeout]
    return tuple(found)


async def write_bulk(
    client: Any,
    messages: Sequence[Message[Any]],
    *,
    index: str,
    op_type: str = "create",
    id_field: str | None = None,
    document: DocumentOf | None = None,
    conflicts: Mapping[str, ItemOutcome] | None = None,
    **bulk_options: Any,
) -> list[ItemResult]:
    """Write ``messages`` with one ``_bulk`` request and settle each by its item's outcome.

    Args:
        client: an ``AsyncElasticsearch`` or ``AsyncOpenSearch``.
        messages: the bulk ``handle`` was given.
        index: the index to write to.
        op_type: ``create`` (the default: a redelivered message conflicts, and
            is already stored), ``index`` (replace) or ``update`` (upsert).
        id_field: the body field holding the document id; by default the
            message id. A message with neither is dead-lettered.
        document: turns a message into its document; by default the body.
        conflicts: what a 409 means, by action (see :data:`CONFLICTS`).
        **bulk_options: passed to ``client.bulk`` (``refresh``, ``pipeline``…).

    Returns:
        Each message's result, in order; the messages are decided already.

    Raises:
        SinkUnavailable: the cluster was unreachable or refused the request
            (429/5xx): the consumer's breaker holds the bulk.
    """
    prepared = prepare(messages, id_field, document)
    written: list[ItemResult] = []
    if prepared.messages:
        actions = bulk_actions(prepared.documents, index=index, op_type=op_type)
        response = await send_bulk(client, actions, bulk_options)
        written = bulk_results(response, len(prepared.messages), conflicts=conflicts)
    return settle_prepared(messages, prepared, written)


async def send_bulk(client: Any, actions: list[dict[str, Any]], options: Mapping[str, Any]) -> Any:
    """One ``_bulk`` request; a cluster that cannot take it raises :class:`SinkUnavailable`."""
    try:
        return await client.bulk(body=actions, **options)
    except Exception as error:
        if is_outage(error):
            raise SinkUnavailable(f"the _bulk request failed: {error!r}") from error
        raise


@asynccontextmanager
async def open_client(url: str) -> AsyncIterator[Any]:
    """An ``AsyncElasticsearch`` on ``url`` (nodes comma-separated), closed on exit.

    The client connects on its first request, so opening it never waits for
    the cluster.
    """
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch([node.strip() for node in url.split(",") if node.strip()])
    try:
        yield client
    finally:
        await client.close()

"""A message as a document in a store, with the id that makes sending it twice harmless."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from framework.core.message import Message
from framework.core.serialization import DEFAULT_CONVERTER
from framework.sinks.items import ItemOutcome, ItemResult, settle_items

DocumentOf = Callable[[Message[Any]], Mapping[str, Any]]


class UnstorableMessage(ValueError):
    """A message that cannot become a document (not an object, no id): a bad item."""


def document_of(message: Message[Any]) -> dict[str, Any]:
    """The message's body as a document: a JSON object as it came, an attrs model unstructured.

    Raises:
        UnstorableMessage: the body is not an object (a list, a number, text).
    """
    body = message.body
    if attrs.has(type(body)):
        body = DEFAULT_CONVERTER.unstructure(body)
    if not isinstance(body, Mapping):
        raise UnstorableMessage(
            f"the body is {type(body).__name__}, not an object: it cannot be stored as a document"
        )
    return dict(body)


def id_of(message: Message[Any], document: Mapping[str, Any], id_field: str | None) -> str:
    """The document id: the document's ``id_field``, else the message id.

    A stable id is what makes a redelivery harmless: the store answers
    "already there" (409 in Elasticsearch, 11000 in MongoDB) instead of
    storing the same message twice.

    Raises:
        UnstorableMessage: no such id; nothing would stop a duplicate.
    """
    if id_field is not None:
        if document.get(id_field) is None:
            raise UnstorableMessage(f"the document has no {id_field!r} to use as its id")
        return str(document[id_field])
    if not message.message_id:
        raise UnstorableMessage(
            "the message has no message_id to use as the document id: publish with one, "
            "or take the id from a field of the body (id_field=)"
        )
    return message.message_id


@attrs.frozen
class Prepared:
    """A bulk split into the messages that became documents and those refused before sending."""

    messages: list[Message[Any]]
    documents: list[tuple[str, dict[str, Any]]]  # (id, document), in the messages' order
    refused: list[tuple[Message[Any], str]]  # (message, why)


def prepare(
    messages: Sequence[Message[Any]], id_field: str | None, document: DocumentOf | None
) -> Prepared:
    """Each message as ``(id, document)``; a message that cannot be one is refused with why."""
    prepared = Prepared([], [], [])
    for message in messages:
        try:
            body = dict(document(message)) if document is not None else document_of(message)
            prepared.documents.append((id_of(message, body, id_field), body))
        except UnstorableMessage as error:
            prepared.refused.append((message, str(error)))
        else:
            prepared.messages.append(message)
    return prepared


def settle_prepared(
    messages: Sequence[Message[Any]], prepared: Prepared, written: Sequence[ItemResult]
) -> list[ItemResult]:
    """Decide each message: a refused one as a bad item, a sent one as the store answered.

    ``written`` holds the store's answers for ``prepared.messages``, in order.
    Returns every message's result, in the order of ``messages``.
    """
    results = {id(m): ItemResult(ItemOutcome.BAD_ITEM, why) for m, why in prepared.refused}
    results.update(zip(map(id, prepared.messages), written, strict=True))
    decided = [results[id(message)] for message in messages]
    settle_items(messages, decided)
    return decided

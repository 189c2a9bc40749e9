"""What a sink did with each item of a bulk, and the decision that follows for its message."""

from collections.abc import Sequence
from enum import Enum
from typing import Any

import attrs

from framework.core.message import Message


class ItemOutcome(Enum):
    """What a sink did with one item of a bulk write.

    ``STORED``: written now; acked.
    ``ALREADY_STORED``: written before (a duplicate key, a version conflict on a
    newer version); acked, since the work is done.
    ``BAD_ITEM``: the sink refused this item for what it is (a constraint, a
    mapping error); dead-lettered with the reason, never retried.
    ``RETRY``: this item failed for now (throttled, a lock); returned for another
    attempt, counted against ``max_retries``.
    ``UNAVAILABLE``: the sink was down for this item; held for the circuit
    breaker's next probe, never counted against ``max_retries``.
    """

    STORED = "stored"
    ALREADY_STORED = "already_stored"
    BAD_ITEM = "bad_item"
    RETRY = "retry"
    UNAVAILABLE = "unavailable"


@attrs.frozen
class ItemResult:
    """One item's outcome, with the sink's reason (what a dead letter or retry carries)."""

    outcome: ItemOutcome
    reason: str | None = None


def settle_item(message: Message[Any], result: ItemResult) -> None:
    """Decide ``message`` by what the sink did with it."""
    outcome, reason = result.outcome, result.reason
    if outcome in (ItemOutcome.STORED, ItemOutcome.ALREADY_STORED):
        message.ack()
    elif outcome is ItemOutcome.BAD_ITEM:
        message.reject(reason=reason or "the sink refused the item")
    elif outcome is ItemOutcome.RETRY:
        message.requeue(reason=reason)
    else:
        message.unavailable(reason)


def settle_items(messages: Sequence[Message[Any]], results: Sequence[ItemResult]) -> None:
    """Decide each message by the result at the same position.

    Raises:
        ValueError: the sink answered for another number of items than were
            sent; nothing is decided, so the bulk's ``on_exception`` applies.
    """
    if len(messages) != len(results):
        raise ValueError(f"the sink answered for {len(results)} items, {len(messages)} were sent")
    for message, result in zip(messages, results, strict=True):
        settle_item(message, result)

"""Where a settled message goes: acked, back for another attempt, or to a dead-letter queue.

Retries and dead letters are *moves*: a copy is published, confirmed by the
broker, and only then is the original acked. A crash in between leaves a
duplicate, never a loss. Retries carry their count in a header, so they are
bounded the same way on classic queues (which count nothing) and quorum queues.

A copy carries the original's headers. One kind of value cannot be published
again as it came: a 64-bit float (AMQP ``d``, as Java, Go and .NET clients send
it) decodes to a Python ``float``, which the AMQP library encodes as a 32-bit
``f``; 1e300 then fails to encode and 0.1 would silently change. Such a value is
carried as its exact decimal text (``"1e+300"``), and the header
``x-bulkworker-converted`` lists the names of the headers that were converted.
"""

import copy
import datetime
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from aiormq import spec

from framework.core.actions import Actions
from framework.core.consumer import ConsumerSettings
from framework.core.message import ATTEMPTS_HEADER, Delivery, Message

REASON_HEADER = "x-bulkworker-reason"
ERROR_HEADER = "x-bulkworker-error"
QUEUE_HEADER = "x-bulkworker-queue"
CONSUMER_HEADER = "x-bulkworker-consumer"
TIME_HEADER = "x-bulkworker-dead-lettered-at"
CONVERTED_HEADER = "x-bulkworker-converted"
PERSISTENT = 2


@attrs.frozen
class Verdict:
    """A message's action after its bulk, and what went wrong, if anything."""

    message: Message[Any]
    action: Actions
    reason: str = "rejected"
    error: str | None = None


@attrs.frozen
class Move:
    """A copy to publish before the original is acked."""

    message: Message[Any]
    routing_key: str
    properties: spec.Basic.Properties
    kind: str  # "retry" or "dead-letter"
    reason: str
    error: str | None


def describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


class Router:
    """Turns verdicts into settlements now and moves to carry out."""

    def __init__(self, settings: ConsumerSettings, now: Callable[[], str] = utc_now) -> None:
        self.settings = settings
        self._now = now

    def route(
        self, verdicts: Iterable[Verdict]
    ) -> tuple[list[tuple[Delivery, Actions]], list[Move]]:
        settle: list[tuple[Delivery, Actions]] = []
        moves: list[Move] = []
        for verdict in verdicts:
            if verdict.action is Actions.ACK:
                settle.append((verdict.message.delivery, Actions.ACK))
            elif verdict.action is Actions.REQUEUE:
                self._requeue(verdict, settle, moves)
            else:
                self._reject(verdict, verdict.message.attempts, settle, moves)
        return settle, moves

    def _requeue(
        self, verdict: Verdict, settle: list[tuple[Delivery, Actions]], moves: list[Move]
    ) -> None:
        if not self.settings.bounded_retries:
            settle.append((verdict.message.delivery, Actions.REQUEUE))
            return
        attempts = verdict.message.attempts + 1
        limit = self.settings.max_retries
        if limit is not None and attempts > limit:
            exhausted = attrs.evolve(verdict, reason="retries-exhausted")
            self._reject(exhausted, attempts, settle, moves)
            return
        message = verdict.message
        delay = self.settings.retry_delay
        headers = {**message.headers, ATTEMPTS_HEADER: attempts}
        properties = copied_properties(message, headers=headers)
        if delay > 0:
            # The retry queue dead-letters expired messages back to their queue.
            properties.expiration = str(int(delay * 1000))
        routing_key = self.settings.retry_queue_for(message.queue) or message.queue
        moves.append(Move(message, routing_key, properties, "retry", verdict.reason, verdict.error))

    def _reject(
        self,
        verdict: Verdict,
        attempts: int,
        settle: list[tuple[Delivery, Actions]],
        moves: list[Move],
    ) -> None:
        message = verdict.message
        queue = self.settings.dead_letter_queue_for(message.queue)
        if queue is None:
            settle.append((message.delivery, Actions.REJECT))
            return
        headers = {
            **message.headers,
            REASON_HEADER: verdict.reason,
            QUEUE_HEADER: message.queue,
            CONSUMER_HEADER: self.settings.name,
            ATTEMPTS_HEADER: attempts,
            TIME_HEADER: self._now(),
        }
        if verdict.error is not None:
            headers[ERROR_HEADER] = verdict.error[:1000]
        # A dead letter must outlive a broker restart and never expire.
        properties = copied_properties(message, headers=headers, delivery_mode=PERSISTENT)
        properties.expiration = None
        moves.append(Move(message, queue, properties, "dead-letter", verdict.reason, verdict.error))


def copied_properties(message: Message[Any], **changes: Any) -> spec.Basic.Properties:
    """The message's AMQP properties with ``changes``; user_id dropped (the broker checks it)."""
    original = message.properties
    if original is None:
        original = spec.Basic.Properties(
            content_type=message.content_type,
            message_id=message.message_id,
            headers=dict(message.headers),
        )
    properties: spec.Basic.Properties = copy.copy(original)
    properties.user_id = None
    for name, value in changes.items():
        setattr(properties, name, value)
    if properties.headers:
        properties.headers = carried_headers(properties.headers)
    return properties


def carried_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """``headers`` as they can be published again without changing any value.

    A float that a 32-bit AMQP ``f`` cannot hold exactly becomes its decimal
    text, and its header's name is added to ``x-bulkworker-converted``.
    """
    carried: dict[str, Any] = {}
    converted: list[str] = []
    for name, value in headers.items():
        carried[name], changed = carried_value(value)
        if changed:
            converted.append(name)
    if converted:
        earlier = carried.get(CONVERTED_HEADER)
        named = [str(name) for name in earlier] if isinstance(earlier, list) else []
        carried[CONVERTED_HEADER] = named + [name for name in converted if name not in named]
    return carried


def carried_value(value: Any) -> tuple[Any, bool]:
    """The value to publish in its place, and whether it had to change (tables too)."""
    if isinstance(value, float):
        return (value, False) if fits_single(value) else (repr(value), True)
    if isinstance(value, dict):
        items = {key: carried_value(item) for key, item in value.items()}
        changed = any(item_changed for _, item_changed in items.values())
        return {key: item for key, (item, _) in items.items()}, changed
    if isinstance(value, list):
        pairs = [carried_value(item) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    return value, False


def fits_single(value: float) -> bool:
    """Whether a 32-bit float (what the AMQP library encodes a float as) holds ``value`` exactly."""
    if math.isnan(value) or math.isinf(value):
        return True
    try:
        packed = struct.pack(">f", value)
    except OverflowError:
        return False
    return bool(struct.unpack(">f", packed)[0] == value)

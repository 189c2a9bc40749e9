"""Where a settled message goes: acked, back for another attempt, or to a dead-letter queue.

Retries and dead letters are *moves*: a copy is published, confirmed by the
broker, and only then is the original acked. A crash in between leaves a
duplicate, never a loss. Retries carry their count in a header, so they are
bounded the same way on classic queues (which count nothing) and quorum queues.

A move is neutral: the copy's headers, expiration and persistence. The AMQP
layer (``framework.amqp.properties``) turns it into the properties it publishes.
"""

import datetime
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

import attrs

from framework.core.actions import Actions
from framework.core.consumer import ConsumerSettings
from framework.core.headers import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    TIME_HEADER,
)
from framework.core.message import Delivery, Message


class OutcomeKind(StrEnum):
    """What became of a message: settled with the broker, or moved as a copy."""

    ACK = "ack"
    REQUEUE = "requeue"  # returned to its queue by the broker
    REJECT = "reject"  # refused to the broker, not requeued
    RETRY = "retry"  # a copy went back for another attempt
    DEAD_LETTER = "dead-letter"  # a copy went to a dead-letter queue


@attrs.frozen
class Verdict:
    """A message's action after its bulk, and what went wrong, if anything."""

    message: Message[Any]
    action: Actions
    reason: str = "rejected"
    error: str | None = None


@attrs.frozen(kw_only=True)
class Move:
    """A copy to publish before the original is acked: where, and what it carries.

    ``headers`` replace the original's; ``expiration`` is in milliseconds, as
    AMQP carries it (``None``: never expires); ``persistent`` None keeps the
    original's delivery mode.
    """

    message: Message[Any]
    routing_key: str
    kind: OutcomeKind  # RETRY or DEAD_LETTER
    headers: dict[str, Any]
    expiration: str | None = None
    persistent: bool | None = None
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
        if self.settings.reads_stream:
            # A stream takes nothing back (the broker closes the connection on a nack).
            refused = attrs.evolve(verdict, reason="requeue-on-stream")
            self._reject(refused, verdict.message.attempts, settle, moves)
            return
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
        delay = self.settings.retry_wait(attempts)
        routing_key = self.settings.retry_queue_for(message.queue) or message.queue
        moves.append(
            Move(
                message=message,
                routing_key=routing_key,
                kind=OutcomeKind.RETRY,
                headers={**message.headers, ATTEMPTS_HEADER: attempts},
                # The retry queue dead-letters expired messages back to their queue.
                expiration=str(int(delay * 1000)) if delay > 0 else message_expiration(message),
                reason=verdict.reason,
                error=verdict.error,
            )
        )

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
        moves.append(
            Move(
                message=message,
                routing_key=queue,
                kind=OutcomeKind.DEAD_LETTER,
                headers=headers,
                # A dead letter must outlive a broker restart and never expire.
                expiration=None,
                persistent=True,
                reason=verdict.reason,
                error=verdict.error,
            )
        )


def message_expiration(message: Message[Any]) -> str | None:
    """The per-message TTL the original carried, kept by its retry copy."""
    return getattr(message.properties, "expiration", None)

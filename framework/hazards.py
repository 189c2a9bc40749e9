"""What can stop a consumer's moves, or make them push other messages out, found at start.

Two hazards are visible before the first message:

- **No publish permission.** Retry and dead-letter copies are published to the
  default exchange, and RabbitMQ checks ``write`` permission on the exchange
  (``amq.default``), not on the queue a copy is routed to. The probe publishes
  an empty message to a routing key that no queue has, on a throwaway channel
  in confirm mode: the default exchange drops it (nothing reaches any queue), or
  the broker refuses it with ``ACCESS_REFUSED``, closing only that channel.
- **A capped drop-head queue.** ``x-max-length`` / ``x-max-length-bytes`` with
  the default ``x-overflow: drop-head`` make every publish to a full queue push
  its oldest ready message out silently; retry copies go back to the consumed
  queue (directly, or through ``<queue>.retry``) and take part in that. AMQP
  does not expose a queue's arguments or policies; the check reads
  ``queue_arguments``, which the broker compares with the queue it has when
  ``bulkworker check`` declares it again.
"""

import uuid
from collections.abc import Mapping
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelAccessRefused

from framework.closing import CHANNEL_GONE_ERRORS
from framework.consumer import ConsumerSettings
from framework.errors import ChannelGoneError
from framework.log import EventLog
from framework.transport import broker_reason

CAPS = ("x-max-length", "x-max-length-bytes")


def drop_head_hazard(settings: ConsumerSettings, arguments: Mapping[str, Any]) -> str | None:
    """Why retries on a queue with ``arguments`` can push other messages out, or None."""
    caps = [name for name in CAPS if name in arguments]
    overflow = arguments.get("x-overflow", "drop-head")
    if not caps or overflow != "drop-head" or not settings.bounded_retries:
        return None
    return (
        f"the queue is capped ({', '.join(f'{cap}={arguments[cap]}' for cap in caps)}) with "
        "x-overflow drop-head: when it is full, each retry copy pushes its oldest ready "
        "message out, unhandled and without a trace; use x-overflow reject-publish "
        "(retries then wait for room) or raise the cap"
    )


async def publish_refusal(amqp: Any) -> str | None:
    """The broker's refusal of a publish to the default exchange, or None if it may publish.

    Args:
        amqp: an aiormq connection logged in as the user that publishes the copies.
    """
    probe = await amqp.channel(publisher_confirms=True)
    try:
        # No queue has this name: the default exchange drops the message.
        await probe.basic_publish(b"", exchange="", routing_key=f"bulkworker.probe.{uuid.uuid4()}")
    except ChannelAccessRefused as error:
        return broker_reason(error)
    finally:
        if not probe.is_closed:
            await probe.close()
    return None


async def warn_about_moves(
    connection: AbstractRobustConnection, settings: ConsumerSettings, log: EventLog
) -> None:
    """Log one warning per hazard of ``settings``'s moves: run once when the consumer starts."""
    for queue in settings.queues:
        hazard = drop_head_hazard(settings, settings.queue_arguments)
        if hazard is not None:
            await log.warning(
                "retries can push messages out of a capped queue",
                extra={"consumer": settings.name, "queue": queue, "detail": hazard},
            )
    destinations = moved_to(settings)
    transport = connection.transport
    if not destinations or transport is None:
        return
    try:
        refusal = await publish_refusal(transport.connection)
    except (*CHANNEL_GONE_ERRORS, ChannelGoneError):
        return  # the connection is going: a failed move will say why, then
    if refusal is not None:
        await log.warning(
            "this user may not publish retries or dead letters: they will be held and retried",
            extra={"consumer": settings.name, "destinations": destinations, "error": refusal},
        )


def moved_to(settings: ConsumerSettings) -> list[str]:
    """Every queue this consumer may publish a retry or dead-letter copy to."""
    destinations: list[str] = []
    for queue in settings.queues:
        if settings.bounded_retries:
            destinations.append(settings.retry_queue_for(queue) or queue)
        dead = settings.dead_letter_queue_for(queue)
        if dead is not None:
            destinations.append(dead)
    return sorted(set(destinations))

"""What can stop a consumer's moves, or make them push other messages out, found at start.

Two hazards are visible before the first message:

- **No publish permission.** Retry and dead-letter copies are published to the
  default exchange, and RabbitMQ checks ``write`` permission on the exchange
  (``amq.default``), not on the queue a copy is routed to. The publisher probes
  it without putting anything in a queue (see ``publisher.publish_refusal``).
  The probe runs on the publishing connection, in the background: a broker
  alarm blocks a connection that publishes, and must block neither the
  consuming connection nor the start.
- **A capped drop-head queue.** ``x-max-length`` / ``x-max-length-bytes`` with
  the default ``x-overflow: drop-head`` make every publish to a full queue push
  its oldest ready message out silently; retry copies go back to the consumed
  queue (directly, or through ``<queue>.retry``) and take part in that. AMQP
  does not expose a queue's arguments or policies; the check reads
  ``queue_arguments``, which the broker compares with the queue it has when
  ``bulkworker check`` declares it again.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

from framework.amqp.closing import CHANNEL_GONE_ERRORS
from framework.core.abc import EventLog
from framework.core.consumer import ConsumerSettings
from framework.errors import BulkworkerError

CAPS = ("x-max-length", "x-max-length-bytes")
# The probe waits for one confirm; an alarm can hold it back. Then the first
# refused move says why instead.
PROBE_TIMEOUT = 10.0


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


async def warn_about_capped_queues(settings: ConsumerSettings, log: EventLog) -> None:
    """Log one warning per consumed queue whose retries can push messages out."""
    hazard = drop_head_hazard(settings, settings.queue_arguments)
    if hazard is None:
        return
    for queue in settings.queues:
        await log.warning(
            "retries can push messages out of a capped queue",
            extra={"consumer": settings.name, "queue": queue, "detail": hazard},
        )


async def warn_about_publish_permission(
    publisher: Any, settings: ConsumerSettings, log: EventLog
) -> None:
    """Log one warning if the publisher's user may not publish this consumer's copies.

    ``publisher`` is probed if it has ``refusal()`` (``Publisher`` has; the
    in-memory harness and fakes have not, and are skipped).
    """
    destinations = moved_to(settings)
    refusal_of = getattr(publisher, "refusal", None)
    if not destinations or refusal_of is None:
        return
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            refusal = await refusal_of()
    except (TimeoutError, BulkworkerError, *CHANNEL_GONE_ERRORS):
        return  # no answer now: a refused move will say why
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

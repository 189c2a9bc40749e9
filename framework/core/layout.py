"""The queues the framework keeps beside a consumed queue, and their names and arguments.

``<queue>.dlq`` (or the consumer's ``dead_letter_queue`` template) holds dead
letters; ``<queue>.retry`` holds retries while they wait out ``retry_delay``,
then dead-letters them back to ``<queue>`` through the default exchange.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

# "{queue}" stands for the queue a message came from.
DEFAULT_DEAD_LETTER_QUEUE = "{queue}.dlq"
DEAD_LETTER_SUFFIX = ".dlq"
RETRY_SUFFIX = ".retry"


class QueueDeclaration(NamedTuple):
    """A queue a consumer needs: its name, its arguments, and its role in words."""

    name: str
    arguments: Mapping[str, Any]
    role: str  # "queue", "dead-letter queue" or "retry queue"


def dead_letter_queue(template: str | None, queue: str) -> str | None:
    """Where messages of ``queue`` are dead-lettered; None: rejected to the broker."""
    return None if template is None else template.format(queue=queue)


def retry_queue(queue: str) -> str:
    return f"{queue}{RETRY_SUFFIX}"


def retry_queue_arguments(queue: str) -> dict[str, Any]:
    """An expired retry goes back to ``queue`` through the default exchange."""
    return {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}


def dead_letter_queue_name(queue: str) -> str:
    """``items`` means ``items.dlq``; a name that already ends in ``.dlq`` is taken as is."""
    return queue if queue.endswith(DEAD_LETTER_SUFFIX) else f"{queue}{DEAD_LETTER_SUFFIX}"


def origin_of(dead_letter_queue_name: str) -> str:
    """The queue a default-named dead-letter queue belongs to (``items.dlq`` -> ``items``)."""
    return dead_letter_queue_name.removesuffix(DEAD_LETTER_SUFFIX)

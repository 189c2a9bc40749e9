"""What happens to a message once its bulk has been handled."""

from enum import Enum


class Actions(Enum):
    """How a message is settled with the broker.

    ``ACK``: processed; the broker forgets it.
    ``REQUEUE``: returned to its queue for another attempt.
    ``REJECT``: refused and not requeued; the broker dead-letters it when the
    queue has a dead-letter exchange, and drops it otherwise.
    """

    ACK = "ack"
    REQUEUE = "requeue"
    REJECT = "reject"

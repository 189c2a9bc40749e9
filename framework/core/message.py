"""One delivered message, as ``handle`` sees it, and its decision."""

from collections.abc import Mapping
from typing import Any, Generic, NamedTuple, TypeVar

import attrs

from framework.core.abc import SettlementChannel
from framework.core.actions import Actions
from framework.core.headers import ATTEMPTS_HEADER

BodyT = TypeVar("BodyT")


class Delivery(NamedTuple):
    """Where a message must be settled: delivery tags mean something on one channel only."""

    channel: SettlementChannel
    tag: int


@attrs.define(slots=True, eq=False, repr=False, kw_only=True)
class Message(Generic[BodyT]):
    """A message in a bulk.

    ``body`` is decoded once, on arrival. The decision methods override the
    consumer's ``on_success`` / ``on_exception`` for this message alone; the
    last call wins. Settlement happens after ``handle`` returns, never inside
    these methods.
    """

    body: BodyT
    raw: bytes
    queue: str
    routing_key: str
    delivery: Delivery
    headers: Mapping[str, Any] = attrs.field(factory=dict)
    content_type: str | None = None
    message_id: str | None = None
    redelivered: bool = False
    properties: Any = None  # the AMQP properties as received, kept for retries and dead letters
    _decision: Actions | None = attrs.field(default=None, init=False)

    @property
    def attempts(self) -> int:
        """Failed attempts before this delivery: 0 the first time, 1 after one retry..."""
        value = self.headers.get(ATTEMPTS_HEADER, 0)
        try:
            return max(0, int(value))
        except (TypeError, ValueError):
            return 0

    @property
    def decision(self) -> Actions | None:
        """The action this message asked for itself, if any."""
        return self._decision

    def ack(self) -> None:
        """Settle as processed, whatever happens to the rest of the bulk."""
        self._decision = Actions.ACK

    def requeue(self) -> None:
        """Return to the queue for another attempt."""
        self._decision = Actions.REQUEUE

    def reject(self, requeue: bool = False) -> None:
        """Refuse; ``requeue=True`` is the same as :meth:`requeue`."""
        self._decision = Actions.REQUEUE if requeue else Actions.REJECT

    def forget_decision(self) -> None:
        """Clear the decision, before the framework hands the message over again."""
        self._decision = None

    def __repr__(self) -> str:
        return (
            f"<Message queue={self.queue!r} message_id={self.message_id!r} "
            f"tag={self.delivery.tag} size={len(self.raw)} decision={self._decision}>"
        )

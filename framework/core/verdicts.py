"""A bulk's verdicts carried out: settlements now, moves (retries, dead letters) after.

Each message gets its verdict (its own decision, else ``on_success`` or
``on_exception``); the router turns verdicts into settlements sent at once
and moves the mover publishes before it acks the original. Every outcome is
told to the engine's watchers. A message that cannot be decoded gets its
verdict here too, without ever reaching ``handle``.
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

from framework.core.abc import EventLog
from framework.core.actions import Actions
from framework.core.consumer import ConsumerSettings
from framework.core.message import Message
from framework.core.moves import Mover
from framework.core.outcome import Move, OutcomeKind, Router, Verdict, describe_error
from framework.core.settlement import SettlementReport, Settler
from framework.core.stream import StreamPosition
from framework.core.watch import Outcome, Watchers
from framework.errors import DecodeError

BROKER_KINDS = {
    Actions.ACK: OutcomeKind.ACK,
    Actions.REQUEUE: OutcomeKind.REQUEUE,
    Actions.REJECT: OutcomeKind.REJECT,
}


@attrs.define(kw_only=True, eq=False, repr=False)
class Judge:
    """Gives each message of a bulk its verdict, and carries the verdicts out."""

    settings: ConsumerSettings
    settler: Settler
    # Carries out the retries and dead letters the verdicts ask for.
    mover: Mover
    watchers: Watchers
    log: EventLog
    # Where a stream consumer reads on from: settled messages move it; nothing goes back.
    stream: StreamPosition | None = None
    _router: Router = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._router = Router(self.settings)

    def __repr__(self) -> str:
        return f"<Judge {self.settings.name}>"

    async def give_back(self, messages: Sequence[Message[Any]]) -> None:
        """Requeue ``messages`` to the broker: not handled, not counted as an attempt.

        A stream takes nothing back: they are acked for credit only, and read
        again from the stream position, which stays before them.
        """
        if not messages:
            return
        action = Actions.ACK if self.stream is not None else Actions.REQUEUE
        report = await self.settler.settle([(m.delivery, action) for m in messages])
        if self.watchers.members:
            name = self.settings.name
            for message in messages:
                self.watchers.settled(
                    Outcome(message, OutcomeKind.REQUEUE, "sink-unavailable", None, None, name)
                )
        await self.warn_stale(report)

    def verdict(self, message: Message[Any], error: BaseException | None) -> Verdict:
        default = self.settings.on_exception if error is not None else self.settings.on_success
        action = message.decision or default
        given = message.decision_reason
        if error is None:
            reason = "requeued" if action is Actions.REQUEUE else "rejected"
            return Verdict(message, action, reason, given)
        return Verdict(message, action, "exception", given or describe_error(error))

    async def settle(
        self, verdicts: list[Verdict]
    ) -> tuple[SettlementReport, dict[OutcomeKind, int]]:
        """Settle what can be settled now, start the moves; what each verdict became."""
        now, moves = self._router.route(verdicts)
        if self.stream is not None:
            self.stream.settled(verdict.message for verdict in verdicts)
        report = await self.settler.settle(now)
        if self.watchers.members:
            by_delivery = {verdict.message.delivery: verdict for verdict in verdicts}
            name = self.settings.name
            for delivery, action in now:
                verdict = by_delivery[delivery]
                kind = BROKER_KINDS[action]
                self.watchers.settled(
                    Outcome(verdict.message, kind, verdict.reason, verdict.error, None, name)
                )
        await self.warn_stale(report)
        kinds = Counter(BROKER_KINDS[action] for _, action in now)
        kinds.update(move.kind for move in moves)
        if moves:
            self.mover.start(moves)
        return report, dict(kinds)

    async def refuse(self, message: Message[Any], error: DecodeError) -> None:
        """Dead-letter a message that cannot be decoded: it never reaches ``handle``."""
        self.settler.ledger.track(message.delivery)
        if self.settings.dead_letter_queue_for(message.queue) is None:
            # No dead letter will say it: the broker gets the reject, the log says why.
            await self.log.error(
                "message cannot be decoded: rejected to the broker, never handled",
                extra={
                    "consumer": self.settings.name,
                    "queue": message.queue,
                    "message_id": message.message_id,
                    "reason": error.reason,
                    "error": str(error),
                },
            )
        await self.settle([Verdict(message, Actions.REJECT, error.reason, str(error))])

    async def credit(self, messages: Sequence[Message[Any]]) -> None:
        """Ack stream deliveries settled before (read again after a reconnect): credit only."""
        await self.settler.settle([(m.delivery, Actions.ACK) for m in messages])

    def moved(self, move: Move, kind: OutcomeKind) -> None:
        destination = move.routing_key if kind == move.kind else None
        name = self.settings.name
        self.watchers.settled(
            Outcome(move.message, kind, move.reason, move.error, destination, name)
        )

    async def warn_stale(self, report: SettlementReport) -> None:
        if report.stale:
            await self.log.warning(
                "channel closed before settlement: messages will be redelivered",
                extra={"consumer": self.settings.name, "messages": report.stale},
            )

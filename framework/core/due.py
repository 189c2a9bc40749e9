"""Which bulk goes next: the first buffer that is due, taken as a ``Bulk``.

A buffer is due when it is full (``bulk_size``, ``max_bulk_bytes``, the
adaptive target), when its flush interval has passed, when the engine
closes, or when the prefetch is taken and a bulk must go. With several bulks
at once, a key whose bulk is being handled waits for its turn. Messages of a
channel that closed are dropped on the way (the broker redelivers them), and
stream messages settled since they arrived are left out and acked for credit.
"""

import asyncio
from collections.abc import Callable
from typing import Any

import attrs

from framework.core.buffer import NO_KEY, Buffers
from framework.core.message import Message
from framework.core.outage import OutageGuard
from framework.core.turns import KeyTurns
from framework.core.verdicts import Judge
from framework.core.watch import Bulk


@attrs.define(kw_only=True, eq=False, repr=False)
class DueBulks:
    """Takes one consumer's due bulks from its buffers, and drops what a closed channel left."""

    _buffers: Buffers
    _turns: KeyTurns
    _judge: Judge
    _outage: OutageGuard
    _wake: Callable[[], None]
    dropped: int = attrs.field(default=0, init=False)
    _unreported: int = attrs.field(default=0, init=False)
    _credits: set["asyncio.Task[None]"] = attrs.field(factory=set, init=False)

    def __repr__(self) -> str:
        return f"<DueBulks {self._judge.settings.name} dropped={self.dropped}>"

    def due_now(self, closing: bool) -> bool:
        """Whether a bulk is due now."""
        return self._buffers.due(closing) is not None

    def take(self, closing: bool) -> Bulk | None:
        """The next due bulk whose key may go, or None; watchers are told of it."""
        buffers = self._buffers
        waiting = self._turns.busy
        buffer = buffers.due(closing, waiting)
        if buffer is None:
            buffers.relieve(buffers.total + self._judge.mover.pending, waiting)
            buffer = buffers.due(closing, waiting)
            if buffer is None:
                return None
        if buffer.holds_closed():
            # Its channel died before the transport noticed: the broker redelivers them.
            self._unreported += self.drop_closed(closing)
            return self.take(closing)
        messages, reason, waited = buffers.take(buffer)
        if self._judge.stream is not None:
            messages = self._skip_settled(messages)
            if not messages:
                return self.take(closing)
        key = None if buffer.key is NO_KEY else buffer.key
        bulk = Bulk(self._judge.settings.name, messages, reason, waited, key)
        self._judge.watchers.bulk_taken(bulk)
        return bulk

    def _skip_settled(self, messages: list[Message[Any]]) -> list[Message[Any]]:
        """Leave out stream messages settled since they arrived (re-read after a reconnect
        while the bulk before them was still being handled): they are acked for credit."""
        assert self._judge.stream is not None
        fresh, settled = self._judge.stream.split(messages)
        if settled:
            task = asyncio.ensure_future(self._judge.credit(settled))
            self._credits.add(task)
            task.add_done_callback(self._credits.discard)
        return fresh

    def drop_closed(self, closing: bool) -> int:
        """Forget buffered messages whose channel closed: the broker redelivers them."""
        dropped = self._buffers.drop_closed()
        outage = self._outage
        outage.held = [m for m in outage.held if not m.delivery.channel.is_closed]
        self._judge.settler.ledger.forget_closed()
        self.dropped += dropped
        if self.due_now(closing):
            self._wake()
        return dropped

    async def report_drops(self) -> None:
        """Log the messages :meth:`take` dropped since the last report, if any."""
        if not self._unreported:
            return
        dropped, self._unreported = self._unreported, 0
        await self._judge.log.warning(
            "buffered messages of a closed channel dropped: the broker redelivers them",
            extra={"consumer": self._judge.settings.name, "dropped": dropped},
        )

"""The bulk engine: buffers one consumer's messages and hands them over in bulks.

Pure asyncio, no I/O of its own: the transport feeds it messages, a clock
decides when a partial bulk is due, and a settler sends the outcomes. One
worker task calls ``handle``, so at most one bulk per consumer is handled at a
time while the next one fills.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from framework.actions import Actions
from framework.clock import Clock, Timer
from framework.consumer import ConsumerSettings
from framework.log import EventLog
from framework.message import Delivery, Message
from framework.settlement import SettlementReport, Settler

Handler = Callable[[list[Message[Any]]], Awaitable[None]]


class BulkEngine:
    """Collects messages into bulks, calls the handler, settles the results."""

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: Handler,
        *,
        clock: Clock,
        log: EventLog,
        settler: Settler | None = None,
    ) -> None:
        self.settings = settings
        self._handler = handler
        self._clock = clock
        self._log = log
        self.settler = settler or Settler()
        self._buffer: deque[Message[Any]] = deque()
        self._arrivals: deque[float] = deque()
        self._wake = asyncio.Event()
        self._timer: Timer | None = None
        self._due = False
        self._closing = False
        self.bulks_handled = 0

    def __repr__(self) -> str:
        return (
            f"<BulkEngine {self.settings.name} buffered={len(self._buffer)} "
            f"bulks_handled={self.bulks_handled}>"
        )

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def accept(self, message: Message[Any]) -> None:
        """Take a decoded message into the next bulk; called for every delivery."""
        self.settler.ledger.track(message.delivery)
        self._buffer.append(message)
        self._arrivals.append(self._clock.now())
        if self._timer is None and not self._due:
            self._timer = self._clock.call_later(self.settings.flush_interval, self._on_deadline)
        if len(self._buffer) >= self.settings.bulk_size:
            self._wake.set()

    async def refuse(
        self, delivery: Delivery, queue: str, message_id: str | None, reason: str
    ) -> None:
        """Reject an undecodable delivery without requeue: it never reaches ``handle``."""
        self.settler.ledger.track(delivery)
        report = await self.settler.settle([(delivery, Actions.REJECT)])
        await self._log.error(
            "message rejected: it cannot be decoded",
            extra={
                "consumer": self.settings.name,
                "queue": queue,
                "message_id": message_id,
                "error": reason,
                "rejected": report.rejected == 1,
            },
        )

    def drop_closed(self) -> int:
        """Forget buffered messages whose channel closed: the broker redelivers them."""
        kept = [
            (m, t)
            for m, t in zip(self._buffer, self._arrivals, strict=True)
            if not m.delivery.channel.is_closed
        ]
        dropped = len(self._buffer) - len(kept)
        self._buffer = deque(m for m, _ in kept)
        self._arrivals = deque(t for _, t in kept)
        self.settler.ledger.forget_closed()
        self._rearm_timer()
        return dropped

    def close(self) -> None:
        """Ask the worker to hand over what is buffered and stop."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """The worker: one ``handle`` call at a time until closed and drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (bulk := self._take_due_bulk()) is not None:
                await self.process(bulk)
            if self._closing and not self._buffer:
                self._cancel_timer()
                return

    def _take_due_bulk(self) -> list[Message[Any]] | None:
        if not self._buffer or not (
            self._closing or self._due or len(self._buffer) >= self.settings.bulk_size
        ):
            return None
        size = min(self.settings.bulk_size, len(self._buffer))
        bulk = [self._buffer.popleft() for _ in range(size)]
        for _ in range(size):
            self._arrivals.popleft()
        self._rearm_timer()
        return bulk

    def _on_deadline(self) -> None:
        self._timer = None
        self._due = True
        self._wake.set()

    def _rearm_timer(self) -> None:
        # The flush interval counts from the first message of the next bulk.
        self._cancel_timer()
        self._due = False
        if self._buffer:
            delay = max(0.0, self._arrivals[0] + self.settings.flush_interval - self._clock.now())
            self._timer = self._clock.call_later(delay, self._on_deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def process(self, bulk: list[Message[Any]]) -> SettlementReport:
        """Call the handler on one bulk and settle every message of it."""
        failed = False
        try:
            await self._handler(bulk)
        except Exception as error:
            failed = True
            await self._log.error(
                "handle raised: bulk settled with on_exception",
                extra={
                    "consumer": self.settings.name,
                    "bulk_size": len(bulk),
                    "on_exception": self.settings.on_exception.name,
                },
                exc_info=error,
            )
        self.bulks_handled += 1
        default = self.settings.on_exception if failed else self.settings.on_success
        report = await self.settler.settle((m.delivery, m.decision or default) for m in bulk)
        if report.stale:
            await self._log.warning(
                "channel closed before settlement: messages will be redelivered",
                extra={"consumer": self.settings.name, "messages": report.stale},
            )
        return report

"""Carrying out moves (retry copies, dead letters) without ever looping hot.

A move publishes a copy with broker confirms and only then acks the original.
When the copy is refused (nacked by a full queue, returned unroutable,
access refused, a header that cannot be encoded, the publisher's channel
gone), requeueing the original would hand it straight back to ``handle``: a
hot loop. Instead the original is *held*: neither acked nor requeued, still
counting against prefetch, while the move is tried again after a pause that
doubles up to a cap. Other messages keep flowing meanwhile. A queue the
framework declared that has gone missing is declared again before the next
try. If the original's channel closes while its move is held, the move is
given up: the broker redelivers the original.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from framework.core.abc import Clock, EventLog, MovePublisher, QueueDeclarer
from framework.core.actions import Actions
from framework.core.consumer import ConsumerSettings
from framework.core.outcome import Move, OutcomeKind, describe_error
from framework.core.settlement import Settler
from framework.errors import UnroutableError

# The first pause after a refused copy; each further refusal doubles it.
FIRST_PAUSE = 0.5


# What became of a move: (move, outcome kind); the kind is the move's own when it
# was carried out, "requeue" when it was given up and the broker redelivers the original.
MoveObserver = Callable[[Move, OutcomeKind], None]


def pauses(first: float, cap: float) -> "PauseSchedule":
    """The pauses between tries of a held move: ``first``, doubling, never above ``cap``."""
    return PauseSchedule(first, cap)


class PauseSchedule:
    """Capped exponential backoff, one value per pause."""

    def __init__(self, first: float, cap: float) -> None:
        self._next = min(first, cap)
        self._cap = cap

    def next(self) -> float:
        pause = self._next
        self._next = min(self._next * 2, self._cap)
        return pause


class Mover:
    """Owns the moves of one consumer: publishes, holds what was refused, settles."""

    def __init__(
        self,
        settings: ConsumerSettings,
        *,
        publisher: MovePublisher,
        settler: Settler,
        clock: Clock,
        log: EventLog,
        observe: MoveObserver,
        reconnect_max_delay: float = 30.0,
        declarer: QueueDeclarer | None = None,
    ) -> None:
        self.settings = settings
        self._publisher = publisher
        self._settler = settler
        self._clock = clock
        self._log = log
        self._observe = observe
        self._max_delay = reconnect_max_delay
        self._declarer = declarer
        # Only queues the framework itself declares are declared again.
        names = [name for name, _, _ in settings.declarations()]
        self._ours = set(names) if settings.declare else set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.held = 0

    def __repr__(self) -> str:
        return f"<Mover {self.settings.name} in_flight={self.in_flight} held={self.held}>"

    @property
    def pending(self) -> int:
        """Moves not yet carried out: waiting for a confirm, or held for another try."""
        return self.in_flight

    def start(self, moves: list[Move]) -> None:
        """Carry out ``moves`` in the background: the next bulk need not wait for confirms."""
        self.in_flight += len(moves)
        task = asyncio.create_task(self._carry_out(moves))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def finish(self) -> None:
        """Wait until every move is carried out (or given up with its channel)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def abandon(self) -> None:
        """Stop trying: the originals stay unacked, and the broker requeues them on close."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _carry_out(self, moves: list[Move]) -> None:
        try:
            failed = await self._try(moves)
            held = group_by_destination(failed)
            await asyncio.gather(*(self._hold(group) for group in held))
        finally:
            self.in_flight -= len(moves)

    async def _try(self, moves: list[Move]) -> list[tuple[Move, BaseException]]:
        """Publish each copy once; ack the originals of those confirmed; return the rest."""
        results = await asyncio.gather(
            *(self._publish(move) for move in moves), return_exceptions=True
        )
        done = [move for move, result in zip(moves, results, strict=True) if result is None]
        await self._settle_done(done)
        return [
            (move, result)
            for move, result in zip(moves, results, strict=True)
            if isinstance(result, BaseException)
        ]

    async def _publish(self, move: Move) -> None:
        await self._publisher.publish_move(move)

    async def _settle_done(self, done: list[Move]) -> None:
        if not done:
            return
        report = await self._settler.settle([(m.message.delivery, Actions.ACK) for m in done])
        for move in done:
            self._observe(move, move.kind)
        await self._report_dead_letters(done)
        if report.stale:
            await self._log.warning(
                "channel closed before settlement: messages will be redelivered",
                extra={"consumer": self.settings.name, "messages": report.stale},
            )

    async def _hold(self, failed: list[tuple[Move, BaseException]]) -> None:
        """Try the held moves again after each pause until all are carried out."""
        schedule = pauses(FIRST_PAUSE, self._max_delay)
        attempt = 1
        self.held += len(failed)
        try:
            while failed := await self._still_held(failed):
                pause = schedule.next()
                await self._warn_held(failed, attempt, pause)
                await self._pause(pause, failed)
                attempt += 1
                failed = await self._try_again(await self._still_held(failed))
        finally:
            self.held -= len(failed)

    async def _try_again(
        self, failed: list[tuple[Move, BaseException]]
    ) -> list[tuple[Move, BaseException]]:
        if not failed:
            return failed
        declare_error = await self._declare_if_gone(failed)
        if declare_error is not None:
            # Publishing would be returned again: the next pause says why instead.
            return [(move, declare_error) for move, _ in failed]
        tried = len(failed)
        failed = await self._try([move for move, _ in failed])
        self.held -= tried - len(failed)
        return failed

    async def _still_held(
        self, failed: list[tuple[Move, BaseException]]
    ) -> list[tuple[Move, BaseException]]:
        """Give up the moves whose original's channel closed: the broker redelivers those."""
        gone = [move for move, _ in failed if move.message.delivery.channel.is_closed]
        if not gone:
            return failed
        for move in gone:
            self._observe(move, OutcomeKind.REQUEUE)
        self.held -= len(gone)
        await self._log.warning(
            "channel closed while a move was held: the broker redelivers the messages",
            extra={
                "consumer": self.settings.name,
                "destination": gone[0].routing_key,
                "kind": gone[0].kind,
                "count": len(gone),
                "message_ids": [move.message.message_id for move in gone][:50],
            },
        )
        given_up = {id(move) for move in gone}
        return [(move, error) for move, error in failed if id(move) not in given_up]

    async def _warn_held(
        self, failed: list[tuple[Move, BaseException]], attempt: int, pause: float
    ) -> None:
        first, error = failed[0]
        await self._log.warning(
            f"could not publish the {first.kind} copy: holding the message, trying again",
            extra={
                "consumer": self.settings.name,
                "destination": first.routing_key,
                "kind": first.kind,
                "attempt": attempt,
                "retry_in": pause,
                "error": describe_error(error),
                "count": len(failed),
                "message_ids": [move.message.message_id for move, _ in failed][:50],
            },
        )

    async def _pause(self, seconds: float, failed: list[tuple[Move, BaseException]]) -> None:
        """Sleep on the engine's clock; wake early if an original's channel closes."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def fire(*_: object) -> None:
            if not wake.done():
                wake.set_result(None)

        timer = self._clock.call_later(seconds, fire)
        found = (closing_of(move.message.delivery.channel) for move, _ in failed)
        closings = {closing for closing in found if closing is not None}
        for closing in closings:
            closing.add_done_callback(fire)
        try:
            await wake
        finally:
            timer.cancel()
            for closing in closings:
                closing.remove_done_callback(fire)

    async def _declare_if_gone(self, failed: list[tuple[Move, BaseException]]) -> Exception | None:
        """Declare the destination again if the broker said it is gone and it is ours.

        Returns the error if declaring failed.
        """
        move, error = failed[0]
        queue = move.routing_key
        if self._declarer is None or queue not in self._ours:
            return None
        if not isinstance(error, UnroutableError):
            return None
        try:
            await self._declarer.declare(queue)
        except Exception as declare_error:
            return declare_error
        await self._log.warning(
            "a queue the consumer declared was gone: declared it again",
            extra={"consumer": self.settings.name, "queue": queue, "kind": move.kind},
        )
        return None

    async def _report_dead_letters(self, done: list[Move]) -> None:
        # One line per dead letter: what a person looking for a message searches for.
        for move in done:
            if move.kind is OutcomeKind.DEAD_LETTER:
                await self._log.warning(
                    "message dead-lettered",
                    extra={
                        "consumer": self.settings.name,
                        "queue": move.message.queue,
                        "dead_letter_queue": move.routing_key,
                        "reason": move.reason,
                        "error": move.error,
                        "message_id": move.message.message_id,
                    },
                )


def closing_of(channel: object) -> "asyncio.Future[Any] | None":
    """The future an aiormq channel resolves when it closes; None for channels without one."""
    closing = getattr(channel, "closing", None)
    return closing if isinstance(closing, asyncio.Future) else None


def group_by_destination(
    failed: list[tuple[Move, BaseException]],
) -> list[list[tuple[Move, BaseException]]]:
    """Refused moves held together per (kind, destination): one pause and log line each."""
    groups: dict[tuple[str, str], list[tuple[Move, BaseException]]] = {}
    for move, error in failed:
        groups.setdefault((move.kind, move.routing_key), []).append((move, error))
    return list(groups.values())

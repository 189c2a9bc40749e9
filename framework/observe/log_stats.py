"""What the log says between "consumer started" and "consumer stopped".

A DEBUG line for every bulk (size, why it was flushed, how long it took, what
became of its messages), and while messages flow, an INFO summary per
consumer every ``BULKWORKER_LOG_STATS_INTERVAL`` seconds: messages per second,
bulks, retries, dead letters. An idle worker logs nothing.
"""

import asyncio

import attrs

from framework.core.abc import EventLog
from framework.core.outcome import OutcomeKind
from framework.core.tasks import cancelled
from framework.core.watch import BulkDone, Outcome, Watcher


class BulkLog(Watcher):
    """One DEBUG line per bulk handed to ``handle``."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def bulk_done(self, done: BulkDone) -> None:
        # Not awaited: the logger keeps its own tasks and finishes them on shutdown.
        self._log.debug(
            "bulk handled",
            extra={
                "consumer": done.bulk.consumer,
                "size": done.bulk.size,
                "flush_reason": str(done.bulk.reason),
                "waited": round(done.bulk.waited, 3),
                "seconds": round(done.seconds, 3),
                "failed": done.failed,
                **{str(kind).replace("-", "_"): count for kind, count in done.outcomes.items()},
            },
        )


@attrs.define
class Tally:
    """One consumer's counts since the last summary."""

    messages: int = 0
    bulks: int = 0
    retries: int = 0
    dead_letters: int = 0

    def __bool__(self) -> bool:
        return bool(self.messages or self.bulks or self.retries or self.dead_letters)


class StatsLog(Watcher):
    """Counts what each consumer did; :meth:`report` logs it and starts counting anew."""

    def __init__(self, log: EventLog, interval: float) -> None:
        self._log = log
        self.interval = interval
        self._tallies: dict[str, Tally] = {}
        self._task: asyncio.Task[None] | None = None

    def _tally(self, consumer: str) -> Tally:
        tally = self._tallies.get(consumer)
        if tally is None:
            tally = self._tallies[consumer] = Tally()
        return tally

    def bulk_done(self, done: BulkDone) -> None:
        tally = self._tally(done.bulk.consumer)
        tally.bulks += 1
        tally.messages += done.bulk.size

    def settled(self, outcome: Outcome) -> None:
        if outcome.kind is OutcomeKind.RETRY:
            self._tally(outcome.consumer).retries += 1
        elif outcome.kind is OutcomeKind.DEAD_LETTER:
            self._tally(outcome.consumer).dead_letters += 1

    def start(self) -> None:
        """Report every ``interval`` seconds until :meth:`stop`; an interval of 0 reports never."""
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._every_interval(), name="bulkworker:stats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.report(self.interval)

    async def report(self, seconds: float) -> None:
        """Log each consumer that did something in the last ``seconds``; then start anew."""
        tallies, self._tallies = self._tallies, {}
        for consumer, tally in sorted(tallies.items()):
            if tally:
                await self._log.info(
                    "consumer stats",
                    extra={
                        "consumer": consumer,
                        "seconds": seconds,
                        "messages_per_second": round(tally.messages / seconds, 1),
                        **attrs.asdict(tally),
                    },
                )

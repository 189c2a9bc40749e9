"""Running one periodic task on its schedule: never two runs at once, never a dead schedule.

Each tick arms the next one first, so the schedule holds whatever a run does. A
tick that finds the previous run still running is skipped and counted; a run
that raises is logged and counted, and the next tick comes as planned.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable

from framework.core.abc import Clock, EventLog, Timer
from framework.core.periodic import TaskSettings
from framework.core.watch import CallOutcome, TaskRun, Watcher

Run = Callable[[], Awaitable[None]]


class Schedule:
    """One task's ticks, its current run, and how many ran and were skipped."""

    def __init__(
        self,
        settings: TaskSettings,
        run: Run,
        *,
        clock: Clock,
        log: EventLog,
        watcher: Watcher | None = None,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._run = run
        self._clock = clock
        self._log = log
        self._watcher = watcher or Watcher()
        self._chance = chance
        self._timer: Timer | None = None
        self._current: asyncio.Task[None] | None = None
        self._stopping = False
        self.runs = 0
        self.failures = 0
        self.skipped = 0

    def __repr__(self) -> str:
        return (
            f"<Schedule {self.settings.name} runs={self.runs} failures={self.failures} "
            f"skipped={self.skipped}>"
        )

    @property
    def running(self) -> bool:
        return self._current is not None and not self._current.done()

    def start(self) -> None:
        first = 0.0 if self.settings.run_at_startup else self.settings.interval
        self._arm(first)

    def _arm(self, delay: float) -> None:
        delay += self._chance() * self.settings.jitter
        self._timer = self._clock.call_later(delay, self._tick)

    def tick(self) -> None:
        """A tick now: the next is armed an interval from now; the run starts unless one runs."""
        self._tick()

    async def wait_for_run(self) -> None:
        """Until the current run, if any, has ended."""
        if self._current is not None:
            await asyncio.wait({self._current})

    def _tick(self) -> None:
        if self._stopping:
            return
        self._arm(self.settings.interval)
        if self.running:
            self.skipped += 1
            self._watcher.task_skipped(self.settings.name)
            return
        self._current = asyncio.create_task(
            self._run_once(), name=f"bulkworker:{self.settings.name}"
        )

    async def _run_once(self) -> None:
        started = self._clock.now()
        try:
            await self._run()
        except BaseException as error:  # the user's code: every way out is an outcome
            if self._stopping and isinstance(error, asyncio.CancelledError):
                raise
            await self._failed(error, started)
            return
        self.runs += 1
        seconds = self._clock.now() - started
        self._watcher.task_ran(TaskRun(self.settings.name, CallOutcome.SUCCESS, seconds))

    async def _failed(self, error: BaseException, started: float) -> None:
        self.failures += 1
        seconds = self._clock.now() - started
        self._watcher.task_ran(TaskRun(self.settings.name, CallOutcome.ERROR, seconds, error))
        await self._log.error(
            "periodic task raised: it runs again at its next tick",
            extra={"task": self.settings.name, "seconds": round(seconds, 3)},
            exc_info=error,
        )

    async def stop(self, within: float) -> bool:
        """No more ticks; wait for a running run up to ``within`` seconds, then cancel it.

        Returns False when the run had to be cancelled.
        """
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        current = self._current
        if current is None or current.done():
            return True
        done, _ = await asyncio.wait({current}, timeout=within)
        if done:
            return True
        current.cancel()
        await asyncio.wait({current}, timeout=1.0)
        await self._log.warning(
            "periodic task still running at shutdown: cancelled",
            extra={"task": self.settings.name, "waited": within},
        )
        return False

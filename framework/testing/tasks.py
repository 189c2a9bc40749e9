"""Testing a periodic task: its runs on a clock the test moves, with its services, no broker."""

import asyncio
from collections.abc import Mapping
from typing import Any

from framework.core.periodic import PeriodicTask, TaskSettings
from framework.core.schedule import Schedule
from framework.core.watch import TaskRun, Watcher
from framework.testing.fakes import FakeClock, RecordingLog
from framework.testing.overrides import Overrides
from framework.testing.publisher import RecordingPublisher
from framework.wiring.container import Container
from framework.wiring.injection import build_task


class TaskRecorder(Watcher):
    def __init__(self) -> None:
        self.runs: list[TaskRun] = []
        self.skipped = 0

    def task_ran(self, run: TaskRun) -> None:
        self.runs.append(run)

    def task_skipped(self, task: str) -> None:
        self.skipped += 1


class TaskHarness:
    """Runs one periodic task class through its real schedule, in memory::

        async with TaskHarness(Cleanup, overrides={"store": store}) as h:
            await h.advance(60)          # one interval: one run
            assert 1 == len(h.runs)

    As in :class:`ConsumerHarness`, the container's ``publisher`` records
    (``h.published``) and its ``connection`` connects nowhere. Jitter is 0
    unless ``chance`` says otherwise (a function returning 0 to 1).
    """

    def __init__(
        self,
        task: type[PeriodicTask],
        *,
        container: Any = None,
        overrides: Mapping[str, Any] | None = None,
        chance: Any = None,
    ) -> None:
        self.task_class = task
        self.container = container if container is not None else Container()
        self.publisher = RecordingPublisher()
        self._overrides = Overrides(
            self.container,
            overrides or {},
            harness="TaskHarness",
            default_container=container is None,
        )
        self.clock = FakeClock()
        self.log = RecordingLog()
        self._recorder = TaskRecorder()
        self._chance = chance or (lambda: 0.0)
        self.schedule: Schedule | None = None

    def __repr__(self) -> str:
        return f"<TaskHarness {self.task_class.__name__} runs={len(self.runs)}>"

    @property
    def runs(self) -> list[TaskRun]:
        """Each run that ended, with its outcome and error."""
        return self._recorder.runs

    @property
    def skipped(self) -> int:
        """Ticks that came while the previous run still ran."""
        return self._recorder.skipped

    @property
    def overrides(self) -> dict[str, Any]:
        """The providers this harness replaces, by name, as given."""
        return dict(self._overrides.values)

    @property
    def published(self) -> list[Any]:
        return self.publisher.messages

    async def __aenter__(self) -> "TaskHarness":
        self._overrides.apply()
        try:
            self._overrides.go_offline(self.publisher)
            run = await build_task(self.task_class, self.container)
        except BaseException:
            self._overrides.restore()
            raise
        self.schedule = Schedule(
            TaskSettings.of(self.task_class),
            run,
            clock=self.clock,
            log=self.log,
            watcher=self._recorder,
            chance=self._chance,
        )
        self.schedule.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self.schedule is not None:
                await self.schedule.stop(within=5.0)
        finally:
            self._overrides.restore()

    async def advance(self, seconds: float) -> None:
        """Move the clock; the ticks that come due start their runs, which are let finish."""
        assert self.schedule is not None, "use `async with TaskHarness(...) as h:`"
        target = self.clock.now() + seconds
        # Tick by tick: a run ends before the clock moves on, unless it waits itself.
        while (due := self.clock.next_due()) is not None and due <= target:
            self.clock.advance(due - self.clock.now())
            await asyncio.sleep(0)
            await self.schedule.wait_for_run()
        self.clock.advance(target - self.clock.now())

    async def tick(self) -> None:
        """A tick now, and its run to its end."""
        assert self.schedule is not None, "use `async with TaskHarness(...) as h:`"
        self.schedule.tick()
        await self.schedule.wait_for_run()

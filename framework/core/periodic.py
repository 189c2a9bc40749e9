"""Periodic tasks: a class per task, its schedule as class attributes, one ``async def run``.

::

    class Cleanup(PeriodicTask):
        interval = 60.0

        async def run(self, store: Store = Provide["store"]) -> None:
            await store.delete_expired()

Services are injected exactly as into consumers. A tick that comes while the
previous run still runs is skipped, never overlapped; an exception is logged
and the schedule goes on. Declarations are checked when the class is defined.
"""

import abc
import inspect
from typing import Any, ClassVar

import attrs

from framework.errors import ConsumerDefinitionError

TASK_SETTINGS = ("interval", "run_at_startup", "jitter", "every_worker")


def fail(cls: type, attribute: str, problem: str) -> ConsumerDefinitionError:
    return ConsumerDefinitionError(f"{cls.__name__}.{attribute} {problem}")


@attrs.frozen
class TaskSettings:
    """A periodic task class's schedule, checked."""

    name: str
    interval: float
    run_at_startup: bool
    jitter: float
    every_worker: bool

    @classmethod
    def of(cls, task: type["PeriodicTask"]) -> "TaskSettings":
        check_task(task)
        return cls(
            task.__name__,
            float(task.interval),
            task.run_at_startup,
            float(task.jitter),
            task.every_worker,
        )

    def runs_in(self, worker_id: int) -> bool:
        """With ``--workers N``: worker 0 alone, unless every worker should."""
        return self.every_worker or worker_id == 0


class PeriodicTask(abc.ABC):
    """Base class of periodic tasks: set ``interval`` and write ``async def run(self)``.

    Attributes:
        interval: seconds from one run's start to the next one's.
        run_at_startup: run once as soon as the worker has started, then every interval.
        jitter: up to this many seconds added at random to each wait, so that
            the workers of many pods do not all run at the same instant.
        every_worker: with ``bulkworker run --workers N``, run in every worker
            process; by default only worker 0 runs it.
    """

    interval: ClassVar[float]
    run_at_startup: ClassVar[bool] = False
    jitter: ClassVar[float] = 0.0
    every_worker: ClassVar[bool] = False
    __bulkworker_abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__bulkworker_abstract__ = abstract
        if is_runnable_task(cls):
            check_task(cls)

    @abc.abstractmethod
    async def run(self) -> None:
        """One run of the task; raising is logged, and the schedule goes on."""


def is_runnable_task(cls: type[PeriodicTask]) -> bool:
    return not cls.__dict__.get("__bulkworker_abstract__", False) and not inspect.isabstract(cls)


def check_task(cls: type[PeriodicTask]) -> None:
    interval = getattr(cls, "interval", None)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise fail(cls, "interval", f"must be a number of seconds above 0, got {interval!r}")
    jitter = cls.jitter
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or jitter < 0:
        raise fail(cls, "jitter", f"must be a number of seconds of at least 0, got {jitter!r}")
    for flag in ("run_at_startup", "every_worker"):
        if not isinstance(getattr(cls, flag), bool):
            raise fail(cls, flag, f"must be True or False, got {getattr(cls, flag)!r}")
    if not inspect.iscoroutinefunction(inspect.unwrap(cls.run)):
        raise fail(cls, "run", "must be a coroutine: declare it 'async def run(self)'")

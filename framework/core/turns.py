"""Whose turn it is: the bulks being handled, one at a time or several side by side.

``max_concurrent_bulks > 1`` hands bulks to ``handle`` side by side, each in
a task of its own. Bulks of different keys may run together; with
``group_by``, a second bulk of a key whose bulk is still being handled waits
until that one is settled, so each key's messages are handled in the order
they came. Without ``group_by``, or with one bulk at a time, every turn is free.
"""

import asyncio
import functools
from collections.abc import Callable, Coroutine, Hashable, Set
from typing import Any

from framework.core.consumer import ConsumerSettings
from framework.core.watch import Bulk


class KeyTurns:
    """The keys with a bulk being handled right now."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.serial = settings.group_by is not None and settings.max_concurrent_bulks > 1
        self._busy: set[Hashable] = set()

    def __repr__(self) -> str:
        return f"<KeyTurns serial={self.serial} busy={len(self._busy)}>"

    @property
    def busy(self) -> Set[Hashable]:
        """Keys whose next bulk must wait: one of theirs is being handled."""
        return self._busy

    def start(self, bulk: Bulk) -> None:
        """``bulk`` is handed to ``handle``: its key waits until :meth:`finish`."""
        if self.serial:
            self._busy.add(bulk.key)

    def finish(self, bulk: Bulk, _task: object = None) -> None:
        """``bulk`` is settled (its task is done): the next bulk of its key may go."""
        self._busy.discard(bulk.key)


class BulkTasks:
    """The bulks being handled: one awaited by the worker, or several in tasks of their own.

    A bulk task that fails keeps its error in ``failure``, for the worker to
    raise as it would have from a bulk it awaited.
    """

    def __init__(
        self, settings: ConsumerSettings, turns: KeyTurns, wake: Callable[[], None]
    ) -> None:
        self.turns = turns
        self._concurrent = settings.max_concurrent_bulks
        self._wake = wake
        self._running: set[asyncio.Task[Any]] = set()
        self._awaited = False
        self.failure: BaseException | None = None

    def __repr__(self) -> str:
        return f"<BulkTasks running={len(self._running)} awaited={self._awaited}>"

    @property
    def running(self) -> bool:
        """Bulks are being handled in tasks of their own."""
        return bool(self._running)

    @property
    def busy(self) -> bool:
        """A bulk is being handled, awaited or in a task."""
        return self._awaited or bool(self._running)

    @property
    def has_room(self) -> bool:
        """Another bulk may start: fewer than ``max_concurrent_bulks`` run in tasks."""
        return len(self._running) < self._concurrent

    async def awaited(self, work: Coroutine[Any, Any, object]) -> None:
        """Handle a bulk here, the next one waiting until it is settled."""
        self._awaited = True
        try:
            await work
        finally:
            self._awaited = False

    def start(self, bulk: Bulk, work: Coroutine[Any, Any, object]) -> None:
        """Handle ``bulk`` in a task of its own, its key's turn taken until it ends."""
        self.turns.start(bulk)
        task = asyncio.create_task(work, name=worker_name())
        self._running.add(task)
        task.add_done_callback(functools.partial(self.turns.finish, bulk))
        task.add_done_callback(self._finished)

    def _finished(self, task: "asyncio.Task[Any]") -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
        self._wake()  # a slot is free: the next due bulk may go

    async def cancel(self, within: float) -> None:
        """The worker is cancelled: so is each bulk task; each stops its own handle call."""
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=within)


def worker_name() -> str | None:
    """The current task's name, for the tasks it starts (logs and tracebacks show whose)."""
    task = asyncio.current_task()
    return None if task is None else task.get_name()

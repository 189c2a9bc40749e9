"""The framework's own background tasks: cancelled and waited for, so none outlives its owner."""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any


async def cancelled(task: "asyncio.Task[Any] | None") -> None:
    """Cancel a background task of the framework's own and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class BackgroundTask:
    """One task an object runs in the background from :meth:`start` until :meth:`stop`.

    Starting it again while it runs starts nothing; stopping cancels it and
    waits for its end, and stopping twice is harmless.
    """

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.name = name
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<BackgroundTask {self.name} running={self._task is not None}>"

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

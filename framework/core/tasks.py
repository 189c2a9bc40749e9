"""The framework's own background tasks: cancelled and waited for, so none outlives its owner."""

import asyncio
import contextlib
from typing import Any


async def cancelled(task: "asyncio.Task[Any] | None") -> None:
    """Cancel a background task of the framework's own and wait for it to end."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

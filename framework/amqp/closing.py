"""Waiting on a channel that may die while we wait.

aiormq writes frames through a small bounded queue per connection. When a
connection dies mid-write, a coroutine blocked on that queue is never woken:
an ack or publish would hang forever. Racing it against the channel's own
``closing`` future turns that into an error the caller can handle.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

from framework.errors import ChannelGoneError

T = TypeVar("T")
# What using a channel that closed under us raises.
CHANNEL_GONE_ERRORS = (ChannelInvalidStateError, AMQPError, ConnectionError)


async def unless_closed(channel: Any, work: Awaitable[T], within: float | None = None) -> T:
    """Await ``work``; raise :class:`ChannelGoneError` if ``channel`` closes or time runs out."""
    task = asyncio.ensure_future(work)
    closing = getattr(channel, "closing", None)
    waiters: set[asyncio.Future[Any]] = {task}
    if isinstance(closing, asyncio.Future):
        waiters.add(closing)
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise ChannelGoneError(f"{channel!r} closed, or did not take the frame within {within}s")

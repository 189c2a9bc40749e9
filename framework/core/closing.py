"""Waiting on a channel that may die while we wait.

The AMQP client (aiormq) writes frames through a small bounded queue per connection. When a
connection dies mid-write, a coroutine blocked on that queue is never woken:
an ack or publish would hang forever. Racing it against the channel's own
``closing`` future turns that into an error the caller can handle.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from framework.errors import ChannelGoneError

T = TypeVar("T")


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
    if isinstance(closing, asyncio.Future) and closing.done():
        raise ChannelGoneError(f"the channel closed: {closing_reason(closing)}")
    raise ChannelGoneError(f"the channel did not take the frame within {within:g}s")


def closing_reason(closing: "asyncio.Future[Any]") -> str:
    """Why a channel closed, in the broker's or the client's words (e.g. ACCESS_REFUSED)."""
    if closing.cancelled():
        return "closed by the client"
    error = closing.exception()
    if error is None:
        return "closed by the client"
    return f"{type(error).__name__}: {error}"

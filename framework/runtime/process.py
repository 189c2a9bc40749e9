"""Process concerns of running consumers: the event loop, signals, and leaving in time.

The :class:`~framework.runtime.orchestrator.Orchestrator` owns the consumers'
lifecycle; this module owns what belongs to the process around it.
"""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from framework.core.tasks import cancelled
from framework.runtime.shutdown import ABANDON_GRACE

T = TypeVar("T")


class SignalCounter:
    """First signal: stop gracefully. Second: leave at once; the broker requeues."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self.count = 0

    def received(self) -> None:
        self.count += 1
        if self.count == 1:
            self._stop.set()
            return
        sys.stderr.write("bulkworker: second signal, exiting now\n")
        sys.stderr.flush()
        os._exit(1)


@contextlib.contextmanager
def stop_signals(counter: SignalCounter) -> Iterator[None]:
    """SIGINT and SIGTERM go to ``counter`` while in the block."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, counter.received)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def wait_first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            await cancelled(task)


def close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, wait a little for it, and close ``loop``.

    Unlike ``asyncio.run``, tasks that ignore cancellation are left behind
    instead of waited for: the process must end.
    """
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=ABANDON_GRACE))
        for task in tasks:
            if task.done():
                retrieve(task)
            else:
                task._log_destroy_pending = False  # type: ignore[attr-defined]
        loop.run_until_complete(loop.shutdown_asyncgens())
        with contextlib.suppress(TimeoutError):
            shutdown = loop.shutdown_default_executor()
            loop.run_until_complete(asyncio.wait_for(shutdown, ABANDON_GRACE))
    finally:
        loop.close()


def retrieve(task: "asyncio.Future[Any]") -> None:
    """Mark ``task``'s outcome as seen: it was logged already, or does not matter."""
    if not task.cancelled():
        task.exception()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_in_new_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` in an event loop of its own (uvloop if installed), then close the loop."""
    loop = (loop_factory() or asyncio.new_event_loop)()
    try:
        return loop.run_until_complete(main)
    finally:
        close_loop(loop)

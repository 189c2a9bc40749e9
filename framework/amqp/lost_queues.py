"""The queues a subscription does not consume now, and the tasks that consume them again.

A queue is lost when the broker cancels its consumer (the queue was deleted)
or when it cannot be consumed after a reconnect; a partition another worker
holds is stood by for. Each gets one task, which tries again with a doubling
pause until the queue is consumed or the subscription pauses or stops.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import attrs

from framework.core.abc import EventLog

# A worker waits this long for the worker a partition belongs to before taking it itself.
STANDBY_WAIT = 10.0
STANDBY_POLL = 0.25
# The first pause before a lost queue is tried again; it doubles up to the reconnect cap.
FIRST_PAUSE = 0.5


@attrs.define(kw_only=True, eq=False, repr=False)
class LostQueues:
    """One task per queue a subscription does not consume now, consuming it once it can."""

    _consumer: str
    _log: EventLog
    # False to try again later: the queue is not back, or the channel is down.
    _try_consume: Callable[[str], Awaitable[bool]]
    _has_consumer: Callable[[str], Awaitable[bool]]
    # False once the subscription pauses or is cancelled: the tasks give up.
    _active: Callable[[], bool]
    _max_delay: float
    _tasks: dict[str, asyncio.Task[None]] = attrs.field(factory=dict, init=False)

    def __repr__(self) -> str:
        return f"<LostQueues {self._consumer} waiting={len(self._tasks)}>"

    def __contains__(self, queue: object) -> bool:
        return queue in self._tasks

    async def lost(self, queue: str, why: str) -> None:
        """Say why ``queue`` is not consumed, and consume it again once it is back."""
        await self._log.error(
            "not consuming a queue: will consume it again when it is back",
            extra={"consumer": self._consumer, "queue": queue, "reason": why},
        )
        self._start(queue, self._resubscribe(queue))

    def stand_by(self, queue: str) -> None:
        """Consume another worker's partition once that worker is registered on it.

        Registered second, this consumer stands by and takes over when the
        active one goes; if nobody comes within the wait, it takes the queue.
        """
        self._start(queue, self._stand_by(queue))

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _start(self, queue: str, consuming: Coroutine[Any, Any, None]) -> None:
        if queue in self._tasks:
            consuming.close()
            return
        task = asyncio.create_task(consuming)
        self._tasks[queue] = task
        task.add_done_callback(lambda _: self._tasks.pop(queue, None))

    async def _stand_by(self, queue: str) -> None:
        waited = 0.0
        while waited < STANDBY_WAIT and not await self._has_consumer(queue):
            await asyncio.sleep(STANDBY_POLL)
            waited += STANDBY_POLL
        await self._resubscribe(queue, announce=False)

    async def _resubscribe(self, queue: str, *, announce: bool = True) -> None:
        delay = FIRST_PAUSE
        while self._active():
            if await self._try_consume(queue):
                if announce:
                    await self._log.warning(
                        "consuming the queue again",
                        extra={"consumer": self._consumer, "queue": queue},
                    )
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_delay)

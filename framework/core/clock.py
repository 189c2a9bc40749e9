"""The event loop's clock, as the engine sees time (tests use ``FakeClock``)."""

import asyncio
from collections.abc import Callable

from framework.core.abc import Clock, Timer


class LoopClock(Clock):
    """The running event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)

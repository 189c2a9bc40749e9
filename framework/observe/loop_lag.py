"""How late the event loop runs what is due: the liveness of a worker.

A task sleeps a fixed tick and measures how much later than asked it woke.
A loop blocked by synchronous code (a CPU-bound handler, a blocking driver)
shows as lag; a loop that stopped answering altogether fails the HTTP probe
itself, since the probe is served on the same loop.
"""

import asyncio

from framework.core.tasks import BackgroundTask
from framework.observe.metrics import EVENT_LOOP_LAG

TICK = 0.5
# Above this, the worker is not live: a probe restarts it.
LIVE_LAG_LIMIT = 10.0


class LagMonitor:
    """Measures the loop's lag every :data:`TICK` seconds; keeps the latest."""

    def __init__(self, tick: float = TICK, limit: float = LIVE_LAG_LIMIT) -> None:
        self.tick = tick
        self.limit = limit
        self.latest = 0.0
        self._measuring = BackgroundTask("bulkworker:loop-lag", self._measure)

    def __repr__(self) -> str:
        return f"<LagMonitor latest={self.latest:.3f}s>"

    @property
    def live(self) -> bool:
        return self.latest <= self.limit

    def start(self) -> None:
        self._measuring.start()

    async def stop(self) -> None:
        await self._measuring.stop()

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(self.tick)
            self.latest = max(0.0, loop.time() - asked - self.tick)
            EVENT_LOOP_LAG.observe(self.latest)

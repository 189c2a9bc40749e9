"""One consumer class at work: its instance, engine, subscription and worker task."""

import asyncio
import contextlib

from aio_pika.abc import AbstractRobustConnection

from framework.clock import Clock
from framework.consumer import ConsumerSettings
from framework.engine import BulkEngine, Handler
from framework.hazards import warn_about_capped_queues, warn_about_publish_permission
from framework.log import EventLog
from framework.moves import MovePublisher
from framework.transport import QueueRedeclarer, Subscription


class ConsumerRunner:
    """Starts consuming for one consumer and stops it in the safe order."""

    def __init__(
        self,
        handler: Handler,
        settings: ConsumerSettings,
        connection: AbstractRobustConnection,
        *,
        clock: Clock,
        log: EventLog,
        publisher: MovePublisher,
        retry_max_delay: float = 30.0,
    ) -> None:
        self.settings = settings
        self._log = log
        self._publisher = publisher
        self._probe: asyncio.Task[None] | None = None
        self.engine = BulkEngine(
            settings,
            handler,
            clock=clock,
            log=log,
            publisher=publisher,
            retry_max_delay=retry_max_delay,
            declarer=QueueRedeclarer(connection, settings),
        )
        self.subscription = Subscription(
            connection, self.engine, log, retry_max_delay=retry_max_delay
        )
        self.worker: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<ConsumerRunner {self.settings.name} running={self.running}>"

    @property
    def running(self) -> bool:
        return self.worker is not None and not self.worker.done()

    async def start(self) -> None:
        await warn_about_capped_queues(self.settings, self._log)
        # In the background: an alarm may hold the probe's confirm back.
        self._probe = asyncio.create_task(
            warn_about_publish_permission(self._publisher, self.settings, self._log)
        )
        # The worker exists before the first delivery can arrive.
        self.worker = asyncio.create_task(
            self.engine.run(), name=f"bulkworker:{self.settings.name}"
        )
        await self.subscription.open()

    async def cancel(self) -> None:
        """Stop new deliveries; what has arrived stays buffered."""
        await self.subscription.cancel()

    async def drain(self) -> None:
        """Let the running bulk finish, then hand over the partial bulk and settle it."""
        self.engine.close()
        if self.worker is not None:
            await asyncio.shield(self.worker)

    async def abort(self) -> None:
        """Stop the worker now; the broker requeues what it held once the channel closes."""
        if self.worker is not None and not self.worker.done():
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        await self.engine.abandon_moves()

    async def close(self, within: float) -> bool:
        return await self.subscription.close(within)

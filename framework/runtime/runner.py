"""One consumer class at work: its instance, engine, subscription and worker task."""

import asyncio
from collections.abc import Callable

from aio_pika.abc import AbstractRobustConnection

from framework.amqp.closing import CHANNEL_GONE_ERRORS
from framework.amqp.declarations import QueueRedeclarer
from framework.amqp.hazards import warn_about_capped_queues, warn_about_publish_permission
from framework.amqp.subscription import Subscription
from framework.core.abc import Clock, EventLog, Handler, MovePublisher
from framework.core.consumer import ConsumerSettings
from framework.core.engine import EngineConfig, build_engine
from framework.core.outage import DEFAULT_CONSUMER_TIMEOUT
from framework.core.partitions import PartitionShare
from framework.core.settlement import Settler
from framework.core.watch import Watcher


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
        reconnect_max_delay: float,
        consumer_timeout: float = DEFAULT_CONSUMER_TIMEOUT,
        on_exit_request: Callable[[BaseException], None] | None = None,
        watcher: Watcher | None = None,
        share: PartitionShare | None = None,
    ) -> None:
        self.settings = settings
        self._log = log
        self._publisher = publisher
        self._probe: asyncio.Task[None] | None = None
        config = EngineConfig(
            clock=clock,
            log=log,
            publisher=publisher,
            settler=Settler(gone_errors=CHANNEL_GONE_ERRORS),
            declarer=QueueRedeclarer(connection, settings),
            watcher=watcher,
            on_exit_request=on_exit_request,
            reconnect_max_delay=reconnect_max_delay,
            consumer_timeout=consumer_timeout,
        )
        self.engine = build_engine(settings, handler, config)
        self.subscription = Subscription(
            connection, self.engine, log, reconnect_max_delay=reconnect_max_delay, share=share
        )
        # While the sink is unavailable, the engine pauses the broker's deliveries.
        self.engine.outage.intake = self.subscription
        self.worker: asyncio.Task[None] | None = None
        self._log = log

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
        """Stop new deliveries and the start-up probe; what has arrived stays buffered."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self.subscription.cancel()

    async def drain(self) -> None:
        """Let the running bulk finish, then hand over the partial bulk and settle it."""
        self.engine.close()
        if self.worker is not None:
            # Waits without cancelling it on a timeout, and without raising what
            # ended it (the orchestrator reported that already).
            await asyncio.wait({self.worker})

    async def abort(self, within: float) -> bool:
        """Cancel the worker; abandon it if it is still running after ``within`` seconds.

        Either way the broker requeues what the worker held once the channel
        closes. Returns False when the worker had to be abandoned.
        """
        deadline = asyncio.get_running_loop().time() + within
        stopped = await cancel_within(self.worker, within) if self.worker else True
        if not stopped:
            await self._log.error(
                "consumer worker ignored cancellation: abandoned, its unsettled messages "
                "go back to the queue when the channel closes",
                extra={
                    "consumer": self.settings.name,
                    "unsettled": self.engine.settler.ledger.unsettled_count(),
                    "waited": within,
                },
            )
        try:
            # Moves are the framework's own tasks: they end when cancelled.
            async with asyncio.timeout_at(deadline):
                await self.engine.abandon_moves()
        except TimeoutError:
            return False
        return stopped

    async def close(self, within: float) -> bool:
        return await self.subscription.close(within)


async def cancel_within(task: "asyncio.Task[None]", within: float) -> bool:
    """Cancel ``task`` and wait for it at most ``within`` seconds; True if it ended."""
    if task.done():
        return True
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        # It will be destroyed pending when the loop closes; the log already said so.
        task._log_destroy_pending = False  # type: ignore[attr-defined]
    return bool(done)

"""What an orchestrator runs: one runner per consumer and one schedule per periodic task.

Started one by one as the orchestrator starts; stopped together, each step
within its share of the :class:`~framework.runtime.shutdown.ShutdownBudget`.
"""

import asyncio
import functools
from collections.abc import Callable

import attrs
from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers

from framework.config.deployment import Deployment
from framework.core.abc import Clock, EventLog, Handler, MovePublisher
from framework.core.consumer import ConsumerSettings
from framework.core.partitions import PartitionShare
from framework.core.schedule import Schedule
from framework.core.watch import Watcher, Watchers
from framework.observe.observation import Observation
from framework.runtime.connections import ConsumerConnections
from framework.runtime.halts import Halts
from framework.runtime.runner import ConsumerRunner
from framework.runtime.shutdown import ShutdownBudget
from framework.wiring.assembly import Plan, build_handlers
from framework.wiring.injection import build_task

# The share of the broker's consumer_timeout that earns a warning.
ACK_TIMEOUT_WARNING = 0.8


@attrs.define(kw_only=True, eq=False, repr=False)
class Fleet:
    """The runners and schedules of one orchestrator, and the log they report to."""

    _deployment: Deployment
    _clock: Clock
    _log: EventLog
    _watchers: Watchers
    _draining: Callable[[], bool]
    runners: list[ConsumerRunner] = attrs.field(factory=list, init=False)
    schedules: list[Schedule] = attrs.field(factory=list, init=False)

    def __repr__(self) -> str:
        return f"<Fleet runners={len(self.runners)} schedules={len(self.schedules)}>"

    async def start(
        self,
        plan: Plan,
        container: containers.Container,
        connections: ConsumerConnections,
        observation: Observation,
        halts: Halts,
    ) -> None:
        """Start every consumer of ``plan`` on its connection, then the periodic tasks."""
        handlers = await build_handlers(plan.classes, container)
        for handler, settings in zip(handlers, plan.settings, strict=True):
            on = await connections.of_consumer(settings)
            watcher = observation.consumer_watcher(self._watchers, settings)
            await self.start_consumer(handler, settings, on, watcher, halts)
        await self.start_tasks(plan, container)

    async def start_consumer(
        self,
        handler: Handler,
        settings: ConsumerSettings,
        on: tuple[AbstractRobustConnection, MovePublisher],
        watcher: Watcher,
        halts: Halts,
    ) -> None:
        """Start consuming for one consumer; its worker ending on its own halts the run."""
        await self._warn_about_ack_timeout(settings)
        connection, publisher = on
        runner = ConsumerRunner(
            handler,
            settings,
            connection,
            clock=self._clock,
            log=self._log,
            publisher=publisher,
            reconnect_max_delay=self._deployment.reconnect_max_delay,
            consumer_timeout=self._deployment.consumer_timeout,
            on_exit_request=functools.partial(halts.exit_requested, settings.name),
            watcher=watcher,
            share=PartitionShare(self._deployment.worker_id, self._deployment.worker_count),
        )
        self.runners.append(runner)
        await runner.start()
        assert runner.worker is not None
        runner.worker.add_done_callback(
            lambda worker: halts.worker_done(settings.name, worker, self._draining())
        )
        await self._log.info("consumer started", extra=started_fields(settings))

    async def start_tasks(self, plan: Plan, container: containers.Container) -> None:
        """Each periodic task this worker runs (worker 0 alone, unless every_worker)."""
        for task, settings in zip(plan.tasks, plan.task_settings, strict=True):
            if not settings.runs_in(self._deployment.worker_id):
                continue
            run = await build_task(task, container)
            schedule = Schedule(
                settings, run, clock=self._clock, log=self._log, watcher=self._watchers
            )
            self.schedules.append(schedule)
            schedule.start()
            await self._log.info(
                "periodic task started",
                extra={"task": settings.name, "interval": settings.interval},
            )

    async def stop(
        self, budget: ShutdownBudget, connections: ConsumerConnections | None, halts: Halts
    ) -> None:
        """Stop the tasks and the consumers together, each step within its budget."""
        await asyncio.gather(
            self._stop_tasks(budget.drain), self._stop_consumers(budget, connections, halts)
        )

    async def _stop_tasks(self, within: float) -> None:
        await asyncio.gather(*(schedule.stop(within) for schedule in self.schedules))

    async def _stop_consumers(
        self, budget: ShutdownBudget, connections: ConsumerConnections | None, halts: Halts
    ) -> None:
        try:
            async with asyncio.timeout(budget.drain):
                await asyncio.gather(*(runner.cancel() for runner in self.runners))
                await asyncio.gather(*(runner.drain() for runner in self.runners))
        except TimeoutError:
            await self._warn_unsettled(budget.drain)
            await asyncio.gather(*(runner.abort(budget.abandon) for runner in self.runners))
        publisher_closed = (
            connections.close_publisher(budget.channels) if connections is not None else done()
        )
        closed = await asyncio.gather(
            publisher_closed, *(runner.close(budget.channels) for runner in self.runners)
        )
        if not all(closed):
            await self._log.warning("RabbitMQ did not answer channel closes in time")
        await halts.report(self._log)
        for runner in self.runners:
            await self._log.info("consumer stopped", extra=stopped_fields(runner))

    async def _warn_unsettled(self, waited: float) -> None:
        unsettled = sum(r.engine.settler.ledger.unsettled_count() for r in self.runners)
        await self._log.warning(
            "shutdown timeout reached: unsettled messages go back to their queues",
            extra={"timeout": waited, "unsettled": unsettled},
        )

    async def _warn_about_ack_timeout(self, settings: ConsumerSettings) -> None:
        # RabbitMQ closes a channel whose delivery stays unacked past its
        # consumer timeout (30 minutes by default), requeueing everything on it.
        worst_case = settings.flush_interval + (settings.handler_timeout or 0.0)
        broker_ack_timeout = self._deployment.consumer_timeout
        if worst_case >= ACK_TIMEOUT_WARNING * broker_ack_timeout:
            await self._log.warning(
                "flush_interval plus handler_timeout come near RabbitMQ's consumer ack timeout",
                extra={
                    "consumer": settings.name,
                    "seconds": worst_case,
                    "broker_ack_timeout": broker_ack_timeout,
                    "handler_timeout": settings.handler_timeout,
                },
            )


async def done() -> bool:
    return True


def started_fields(settings: ConsumerSettings) -> dict[str, object]:
    return {
        "consumer": settings.name,
        "queues": list(settings.queues),
        "bulk_size": settings.bulk_size,
        "prefetch": settings.prefetch,
        "flush_interval": settings.flush_interval,
    }


def stopped_fields(runner: ConsumerRunner) -> dict[str, object]:
    return {
        "consumer": runner.settings.name,
        "bulks_handled": runner.engine.bulks_handled,
        "handle_calls": runner.engine.handle_calls,
    }

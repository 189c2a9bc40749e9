"""The Orchestrator: discovers consumers, starts them, and stops them gracefully."""

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import attrs
from dependency_injector import containers, providers

from framework.amqp.publisher import Publisher
from framework.config.deployment import Deployment, deployment_of
from framework.core.abc import Clock, EventLog, Handler
from framework.core.clock import LoopClock
from framework.core.consumer import ConsumerSettings
from framework.core.partitions import PartitionShare
from framework.core.schedule import Schedule
from framework.core.watch import Watchers
from framework.errors import (
    BulkworkerError,
    ExitRequestedError,
    WorkerCrashedError,
)
from framework.observe.log import route_library_logs, unroute_library_logs
from framework.observe.log_stats import BulkLog, StatsLog
from framework.observe.observation import Observation
from framework.runtime.process import (
    SignalCounter,
    retrieve,
    run_in_new_loop,
    stop_signals,
    wait_first,
)
from framework.runtime.runner import ConsumerRunner
from framework.runtime.shutdown import ABANDON_GRACE, ShutdownBudget
from framework.wiring.assembly import Plan, build_handlers
from framework.wiring.assembly import plan as assemble
from framework.wiring.container import Container
from framework.wiring.discovery import ConsumerSource
from framework.wiring.hooks import Hook, HookFunction
from framework.wiring.injection import build_task, wire_modules

# The share of the broker's consumer_timeout that earns a warning.
ACK_TIMEOUT_WARNING = 0.8
HookT = TypeVar("HookT", bound=HookFunction)


@attrs.frozen
class Halt:
    """Why the orchestrator stops on its own: a worker that ended, or an exit request."""

    consumer: str
    cause: str
    error: BaseException | None = None
    exit_code: int | None = None

    def failure(self) -> BulkworkerError:
        if self.exit_code is not None:
            return ExitRequestedError(
                f"{self.consumer}.handle asked to exit ({self.cause})", self.exit_code
            )
        return WorkerCrashedError(
            f"the worker of consumer {self.consumer} ended on its own ({self.cause}); "
            "every consumer was stopped, the log has the details"
        )


class Orchestrator:
    """Runs a set of consumers against one container.

    Use ``run()`` in a program (blocks until SIGINT or SIGTERM), or
    ``async with Orchestrator(...)`` inside a running event loop. If a
    consumer's worker ends on its own, ``serve()`` stops at once and raises
    :class:`WorkerCrashedError`; leaving ``async with`` raises it too.
    """

    def __init__(
        self,
        consumers: ConsumerSource = "consumers",
        container: containers.Container | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.container = container if container is not None else Container()
        self._source = consumers
        self._clock = clock or LoopClock()
        self._startup_hooks: list[Hook] = []
        self._shutdown_hooks: list[Hook] = []
        self.runners: list[ConsumerRunner] = []
        self.schedules: list[Schedule] = []
        # Told of every consumer's events: logs, metrics and tracing add theirs.
        self.watchers = Watchers()
        self._log: EventLog | None = None
        self._wired = False
        self._started = False
        self._stopping: asyncio.Future[None] | None = None
        self._halted = asyncio.Event()
        self._stop_called = asyncio.Event()
        self._halts: list[Halt] = []
        self._halts_reported = 0
        self._publisher: Any = None
        self._stats: StatsLog | None = None
        self._connection: Any = None
        self._pools: tuple[Any, Any] | None = None
        # Made on start, from the settings as they are then.
        self.observation: Observation | None = None
        # Under a supervisor (`--workers N`): where this worker reports its health.
        self.health_file: Path | None = None

    def __repr__(self) -> str:
        running = sum(runner.running for runner in self.runners)
        return f"<Orchestrator(consumers={len(self.runners)}, running={running})>"

    def _observed(self) -> Observation:
        assert self.observation is not None, "made in start()"
        return self.observation

    def draining(self) -> bool:
        """True from the moment a stop began."""
        return self._stopping is not None

    def connections(self) -> list[tuple[str, str, Any]]:
        """Each open connection as (name, purpose, connection)."""
        if self._pools is None:
            found = [("default", "consuming", self._connection)]
            if isinstance(self._publisher, Publisher):
                found.append(("default", "publishing", self._publisher.connection))
            return [entry for entry in found if entry[2] is not None]
        connections, publishers = self._pools
        return [
            *((name, "consuming", c) for name, c in connections.opened()),
            *((name, "publishing", publisher_connection(p)) for name, p in publishers.opened()),
        ]

    async def _connection_pools(self) -> tuple[Any, Any] | None:
        """The container's connections and publishers by name, if it has them."""
        if not hasattr(self.container, "connections") or not hasattr(self.container, "publishers"):
            return None
        connections = await resolve(self.container.connections())
        publishers = await resolve(self.container.publishers())
        return connections, publishers

    async def _connection_of(self, settings: ConsumerSettings) -> tuple[Any, Any]:
        """The consuming connection and the publisher of the consumer's connection name."""
        if self._pools is None:
            return self._connection, self._publisher
        connections, publishers = self._pools
        return await connections.of(settings.connection), await publishers.of(settings.connection)

    @property
    def source(self) -> ConsumerSource:
        """Where the consumers come from: a package or module name, a module, or classes."""
        return self._source

    @property
    def config(self) -> providers.Configuration:
        """The container's ``config``, filled from the environment on start."""
        return cast(providers.Configuration, self.container.config)

    @property
    def settings(self) -> Deployment:
        """The deployment settings, resolved once from ``config`` and the environment."""
        return deployment_of(self.container)

    def on_startup(self, hook: HookT) -> HookT:
        """Register a startup hook; all run, in order, before any message is handled.

        The hook's parameters are injected like a consumer's
        (``repository: Repository = Provide["repository"]``, async resources
        awaited); a plain positional parameter receives the container.
        """
        self._startup_hooks.append(Hook.of(hook))
        return hook

    def on_shutdown(self, hook: HookT) -> HookT:
        """Register a shutdown hook, injected like a startup hook; run after consuming stopped."""
        self._shutdown_hooks.append(Hook.of(hook))
        return hook

    @property
    def hooks(self) -> list[Hook]:
        """The startup hooks, then the shutdown hooks, as registered."""
        return [*self._startup_hooks, *self._shutdown_hooks]

    async def run_startup_hooks(self) -> None:
        """Run the startup hooks in order; the first that raises stops the rest."""
        for hook in self._startup_hooks:
            await hook.call(self.container)

    async def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook in order; one that raises is logged, the rest still run."""
        for hook in self._shutdown_hooks:
            await self._quietly(hook.call(self.container), f"shutdown hook {hook.name}")

    async def __aenter__(self) -> "Orchestrator":
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
        # A worker that ended on its own (or an exit request) must not pass unnoticed.
        if exc is None and self._halts:
            raise self._halts[0].failure()

    async def start(self) -> None:
        """Validate, connect, run startup hooks, then start consuming."""
        if self._started:
            raise BulkworkerError("this Orchestrator was started already; create a new one")
        self._started = True
        plan = assemble(self._source, self.container)
        self.observation = Observation(
            self.settings, lambda: self.runners, self.connections, self.draining
        )
        self.observation.health_file = self.health_file
        try:
            await self.observation.start(self.watchers)
            await resolve(self.container.init_resources())
            self._log = await resolve(self.container.logger())
            self._watch_in_the_log(self._log)
            wire_modules(self.container, [*plan.classes, *plan.tasks])
            self._wired = True
            await self.run_startup_hooks()
            self._connection = await resolve(self.container.connection())
            self._publisher = await resolve(self.container.publisher())
            self._pools = await self._connection_pools()
            handlers = await build_handlers(plan.classes, self.container)
            for handler, consumer_settings in zip(handlers, plan.settings, strict=True):
                connection, publisher = await self._connection_of(consumer_settings)
                await self._start_consumer(handler, consumer_settings, connection, publisher)
            await self._start_tasks(plan)
            self._observed().started_consuming()
        except BaseException:
            await self.stop()
            raise

    async def _start_tasks(self, plan: Plan) -> None:
        """Each periodic task this worker runs (worker 0 alone, unless every_worker)."""
        assert self._log is not None
        for task, settings in zip(plan.tasks, plan.task_settings, strict=True):
            if not settings.runs_in(self.settings.worker_id):
                continue
            run = await build_task(task, self.container)
            schedule = Schedule(
                settings, run, clock=self._clock, log=self._log, watcher=self.watchers
            )
            self.schedules.append(schedule)
            schedule.start()
            await self._log.info(
                "periodic task started",
                extra={"task": settings.name, "interval": settings.interval},
            )

    async def _stop_tasks(self, within: float) -> None:
        await asyncio.gather(*(schedule.stop(within) for schedule in self.schedules))

    def _watch_in_the_log(self, log: EventLog) -> None:
        self.watchers.add(BulkLog(log))
        self._stats = StatsLog(log, self.settings.log_stats_interval)
        self.watchers.add(self._stats)
        self._stats.start()

    async def _start_consumer(
        self, handler: Handler, settings: ConsumerSettings, connection: Any, publisher: Any
    ) -> None:
        assert self._log is not None
        await self._warn_about_ack_timeout(settings)
        runner = ConsumerRunner(
            handler,
            settings,
            connection,
            clock=self._clock,
            log=self._log,
            publisher=publisher,
            reconnect_max_delay=self.settings.reconnect_max_delay,
            consumer_timeout=self.settings.consumer_timeout,
            on_exit_request=functools.partial(self._on_exit_request, settings.name),
            watcher=self._observed().consumer_watcher(self.watchers, settings),
            share=PartitionShare(self.settings.worker_id, self.settings.worker_count),
        )
        self.runners.append(runner)
        await runner.start()
        assert runner.worker is not None
        runner.worker.add_done_callback(functools.partial(self._on_worker_done, settings.name))
        await self._log.info(
            "consumer started",
            extra={
                "consumer": settings.name,
                "queues": list(settings.queues),
                "bulk_size": settings.bulk_size,
                "prefetch": settings.prefetch,
                "flush_interval": settings.flush_interval,
            },
        )

    async def _warn_about_ack_timeout(self, settings: ConsumerSettings) -> None:
        # RabbitMQ closes a channel whose delivery stays unacked past its
        # consumer timeout (30 minutes by default), requeueing everything on it.
        worst_case = settings.flush_interval + (settings.handler_timeout or 0.0)
        broker_ack_timeout = self.settings.consumer_timeout
        if self._log is not None and worst_case >= ACK_TIMEOUT_WARNING * broker_ack_timeout:
            await self._log.warning(
                "flush_interval plus handler_timeout come near RabbitMQ's consumer ack timeout",
                extra={
                    "consumer": settings.name,
                    "seconds": worst_case,
                    "broker_ack_timeout": broker_ack_timeout,
                    "handler_timeout": settings.handler_timeout,
                },
            )

    def _on_worker_done(self, consumer: str, worker: "asyncio.Task[None]") -> None:
        # A stop ends the workers; anything else ending one leaves a dead consumer.
        if worker.cancelled():
            cause, error = "cancelled", None
        else:
            error = worker.exception()
            cause = describe(error) if error is not None else "returned"
        if self._stopping is None:
            self.halt(Halt(consumer, cause, error))
        elif error is not None:
            # Ending with an error while draining is a defect, not a stop.
            self._halts.append(Halt(consumer, cause, error))

    def _on_exit_request(self, consumer: str, request: BaseException) -> None:
        self.halt(Halt(consumer, describe(request), None, exit_status(request)))

    def halt(self, reason: Halt) -> None:
        """Stop on the orchestrator's own account; ``serve()`` then fails with the first reason."""
        self._halts.append(reason)
        self._halted.set()

    async def _report_halts(self) -> None:
        # Each reason once, the first before the stop begins, any later one after it.
        while self._log is not None and self._halts_reported < len(self._halts):
            reason = self._halts[self._halts_reported]
            self._halts_reported += 1
            extra = {"consumer": reason.consumer, "cause": reason.cause}
            if reason.exit_code is not None:
                await self._log.warning(
                    "handle asked to exit: stopping",
                    extra={**extra, "exit_code": reason.exit_code},
                )
            else:
                await self._log.error(
                    "consumer worker ended: stopping", extra=extra, exc_info=reason.error
                )

    async def stop(self) -> None:
        """Stop gracefully within the shutdown timeout; calling it again waits for the first."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        self._stop_called.set()
        budget = ShutdownBudget(self.settings.shutdown_timeout)
        try:
            await self._report_halts()
            await asyncio.gather(self._stop_tasks(budget.drain), self._stop_consumers(budget))
            if self.observation is not None:
                await self.observation.consumers_stopped()
            if self._stats is not None:
                await self._stats.stop()
            await self._run_shutdown_hooks(budget.hooks)
        finally:
            try:
                await self._release()
            finally:
                # Whatever happened above, a second stop() (serve's) must not wait forever.
                self._stopping.set_result(None)

    async def _release(self) -> None:
        if self._wired:
            self.container.unwire()
        await self._shut_down_resources()
        if self.observation is not None:
            await self.observation.stop()

    async def _shut_down_resources(self) -> None:
        # Each connection closes within budget.connections (robust_connection).
        # A resource whose start a stop cancelled (SIGTERM while connecting) fails
        # its shutdown with that CancelledError: the others are closed all the same.
        # dependency-injector then stops at that resource, so a second round
        # closes the rest.
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        for _ in range(2):
            try:
                await resolve(self.container.shutdown_resources())
                return
            except asyncio.CancelledError:
                if task is not None and task.cancelling() > cancelling:
                    raise  # this stop itself was cancelled

    async def _stop_consumers(self, budget: ShutdownBudget) -> None:
        # Each step has its own limit: see ShutdownBudget.
        try:
            async with asyncio.timeout(budget.drain):
                await asyncio.gather(*(runner.cancel() for runner in self.runners))
                await asyncio.gather(*(runner.drain() for runner in self.runners))
        except TimeoutError:
            await self._warn_unsettled(budget.drain)
            await asyncio.gather(*(runner.abort(budget.abandon) for runner in self.runners))
        closed = await asyncio.gather(
            self._close_publisher(budget.channels),
            *(runner.close(budget.channels) for runner in self.runners),
        )
        if not all(closed) and self._log is not None:
            await self._log.warning("RabbitMQ did not answer channel closes in time")
        await self._report_halts()
        for runner in self.runners:
            await self._report_stop(runner)

    async def _close_publisher(self, within: float) -> bool:
        # Its channel closes with the consumers' channels, so that closing its
        # connection later takes one step of the budget, not two.
        if isinstance(self._publisher, Publisher):
            await self._publisher.close(within)
        return True

    async def _report_stop(self, runner: ConsumerRunner) -> None:
        if self._log is not None:
            await self._log.info(
                "consumer stopped",
                extra={
                    "consumer": runner.settings.name,
                    "bulks_handled": runner.engine.bulks_handled,
                    "handle_calls": runner.engine.handle_calls,
                },
            )

    async def _warn_unsettled(self, waited: float) -> None:
        if self._log is not None:
            unsettled = sum(r.engine.settler.ledger.unsettled_count() for r in self.runners)
            await self._log.warning(
                "shutdown timeout reached: unsettled messages go back to their queues",
                extra={"timeout": waited, "unsettled": unsettled},
            )

    async def _run_shutdown_hooks(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await self.run_shutdown_hooks()
        except TimeoutError:
            if self._log is not None:
                await self._log.error(
                    "shutdown hooks did not finish in time: the rest were skipped",
                    extra={"seconds": within},
                )

    async def _quietly(self, step: Awaitable[Any], what: str) -> None:
        # One failing cleanup must not keep the others from running.
        try:
            await step
        except Exception as error:
            if self._log is not None:
                await self._log.error(f"{what} failed", exc_info=error)

    async def serve(self) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully within the shutdown timeout.

        Signals are honoured from the first moment, while connecting too: a
        stop during start cancels it, then stops as usual.

        Raises:
            WorkerCrashedError: a consumer's worker ended on its own (the log
                says which and why); every consumer was stopped gracefully.
            ExitRequestedError: ``handle`` raised ``SystemExit`` or
                ``KeyboardInterrupt``; every consumer was stopped gracefully.
        """
        library_logs = route_library_logs(self.settings.log_level, 1, self.settings.log_format)
        try:
            with stop_signals(SignalCounter(self._halted)):
                await self._start_unless_halted()
                # stop() called from elsewhere ends serve() too.
                await wait_first(self._halted.wait(), self._stop_called.wait())
                await self.stop()
        finally:
            unroute_library_logs(library_logs)
        if self._halts:
            raise self._halts[0].failure()

    async def _start_unless_halted(self) -> None:
        starting = asyncio.create_task(self.start(), name="bulkworker:start")
        await wait_first(asyncio.shield(starting), self._halted.wait())
        if self._stopping is not None and not starting.done():
            # start() failed and is stopping what it began: let it finish (the
            # stop is bounded) and report why it failed.
            await asyncio.wait({starting})
        if starting.done():
            starting.result()
            return
        # start() stops what it had begun when cancelled; user code stuck in a
        # startup hook that ignores cancellation is left behind.
        starting.cancel()
        await asyncio.wait({starting}, timeout=ABANDON_GRACE)
        if not starting.done():
            starting._log_destroy_pending = False  # type: ignore[attr-defined]
        starting.add_done_callback(retrieve)

    def run(self) -> None:
        """Block until SIGINT or SIGTERM, then shut down gracefully (uvloop if installed).

        Raises:
            SystemExit: ``handle`` asked to exit; its exit status is kept.
            WorkerCrashedError: a consumer's worker ended on its own.
        """
        try:
            run_in_new_loop(self.serve())
        except ExitRequestedError as request:
            raise SystemExit(request.code) from None


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def exit_status(request: BaseException) -> int:
    """The process exit status ``SystemExit`` or ``KeyboardInterrupt`` asks for."""
    if isinstance(request, KeyboardInterrupt):
        return 130
    if not isinstance(request, SystemExit):
        return 1
    if request.code is None:
        return 0
    return request.code if isinstance(request.code, int) else 1


async def resolve(value: Any) -> Any:
    """Await ``value`` if a provider handed back an awaitable (async resources do)."""
    return await value if inspect.isawaitable(value) else value


def publisher_connection(publisher: Any) -> Any:
    return publisher.connection if isinstance(publisher, Publisher) else None

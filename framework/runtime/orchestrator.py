"""The Orchestrator: discovers consumers, starts them, and stops them gracefully.

It orders the steps; the pieces live beside it: what a run does to its
container (:mod:`~framework.runtime.container_run`), the connections consumers
run on (:mod:`~framework.runtime.connections`), the runners and schedules
(:mod:`~framework.runtime.fleet`), the reasons to stop on its own
(:mod:`~framework.runtime.halts`), the hooks (:mod:`~framework.wiring.hooks`)
and the process around it (:mod:`~framework.runtime.process`).
"""

import asyncio
from types import TracebackType
from typing import TypeVar, cast

from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers, providers

from framework.config.contract import WorkerContract
from framework.config.deployment import Deployment, deployment_of
from framework.core.abc import Clock, EventLog
from framework.core.clock import LoopClock
from framework.core.schedule import Schedule
from framework.core.watch import Watchers
from framework.errors import BulkworkerError, ExitRequestedError
from framework.observe.log import route_library_logs, unroute_library_logs
from framework.observe.log_stats import BulkLog, StatsLog
from framework.observe.observation import Observation
from framework.runtime.connections import ConsumerConnections
from framework.runtime.container_run import ContainerRun
from framework.runtime.fleet import Fleet
from framework.runtime.halts import Halt, Halts
from framework.runtime.process import (
    SignalCounter,
    run_in_new_loop,
    start_unless_halted,
    stop_signals,
    wait_first,
)
from framework.runtime.runner import ConsumerRunner
from framework.runtime.shutdown import ShutdownBudget
from framework.wiring.assembly import plan as assemble
from framework.wiring.container import Container, resolve
from framework.wiring.discovery import ConsumerSource
from framework.wiring.hooks import Hook, HookFunction, Hooks

HookT = TypeVar("HookT", bound=HookFunction)

__all__ = ["Halt", "Orchestrator", "resolve"]


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
        self._container_run = ContainerRun(self.container)
        self._clock = clock or LoopClock()
        self._hooks = Hooks()
        # Told of every consumer's events: logs, metrics and tracing add theirs.
        self.watchers = Watchers()
        self.halts = Halts()
        self._log: EventLog | None = None
        self._fleet: Fleet | None = None
        self._connections: ConsumerConnections | None = None
        self._stats: StatsLog | None = None
        self._started = False
        self._stopping: asyncio.Future[None] | None = None
        self._stop_called = asyncio.Event()
        # Made on start, from the settings as they are then.
        self.observation: Observation | None = None
        # Set in a worker process of `--workers N`: what its supervisor told it.
        self.worker: WorkerContract | None = None

    def __repr__(self) -> str:
        running = sum(runner.running for runner in self.runners)
        return f"<Orchestrator(consumers={len(self.runners)}, running={running})>"

    @property
    def runners(self) -> list[ConsumerRunner]:
        """One runner per consumer, in the order they started."""
        return [] if self._fleet is None else self._fleet.runners

    @property
    def schedules(self) -> list[Schedule]:
        """One schedule per periodic task this worker runs."""
        return [] if self._fleet is None else self._fleet.schedules

    def draining(self) -> bool:
        """True from the moment a stop began."""
        return self._stopping is not None

    def connections(self) -> list[tuple[str, str, AbstractRobustConnection | None]]:
        """Each open connection as (name, purpose, connection)."""
        return [] if self._connections is None else self._connections.opened()

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
        """The deployment settings, resolved once from ``config`` and the environment.

        In a worker of ``--workers N``, as its :class:`WorkerContract` makes them.
        """
        deployment = deployment_of(self.container)
        return deployment if self.worker is None else self.worker.applied_to(deployment)

    def on_startup(self, hook: HookT) -> HookT:
        """Register a startup hook; all run, in order, before any message is handled.

        The hook's parameters are injected like a consumer's
        (``repository: Repository = Provide["repository"]``, async resources
        awaited); a plain positional parameter receives the container.
        """
        self._hooks.startup.append(Hook.of(hook))
        return hook

    def on_shutdown(self, hook: HookT) -> HookT:
        """Register a shutdown hook, injected like a startup hook; run after consuming stopped."""
        self._hooks.shutdown.append(Hook.of(hook))
        return hook

    @property
    def hooks(self) -> list[Hook]:
        """The startup hooks, then the shutdown hooks, as registered."""
        return self._hooks.all()

    async def run_startup_hooks(self) -> None:
        """Run the startup hooks in order; the first that raises stops the rest."""
        await self._hooks.run_startup(self.container)

    async def run_shutdown_hooks(self) -> None:
        """Run every shutdown hook in order; one that raises is logged, the rest still run."""
        await self._hooks.run_shutdown(self.container, self._log)

    def halt(self, reason: Halt) -> None:
        """Stop on the orchestrator's own account; ``serve()`` then fails with the first reason."""
        self.halts.halt(reason)

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
        if exc is None and self.halts:
            raise self.halts.failure()

    async def start(self) -> None:
        """Validate, connect, run startup hooks, then start consuming."""
        if self._started:
            raise BulkworkerError("this Orchestrator was started already; create a new one")
        self._started = True
        plan = assemble(self._source, self.container)
        self.observation = self._observation()
        try:
            await self.observation.start(self.watchers)
            fleet = await self._open_fleet()
            self._container_run.wire(plan)
            await self.run_startup_hooks()
            self._connections = await ConsumerConnections.of(self.container)
            await fleet.start(plan, self.container, self._connections, self.observation, self.halts)
            self.observation.started_consuming()
        except BaseException:
            await self.stop()
            raise

    def _observation(self) -> Observation:
        observation = Observation(
            self.settings, lambda: self.runners, self.connections, self.draining
        )
        observation.health_file = None if self.worker is None else self.worker.health_file
        return observation

    async def _open_fleet(self) -> Fleet:
        """The container's resources, its logger (the log hooks report to), and the fleet."""
        log = await self._container_run.open()
        self._log = log
        self.watchers.add(BulkLog(log))
        self._stats = StatsLog(log, self.settings.log_stats_interval)
        self.watchers.add(self._stats)
        self._stats.start()
        self._fleet = Fleet(
            deployment=self.settings,
            clock=self._clock,
            log=log,
            watchers=self.watchers,
            draining=self.draining,
        )
        return self._fleet

    async def stop(self) -> None:
        """Stop gracefully within the shutdown timeout; calling it again waits for the first."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        self._stop_called.set()
        budget = ShutdownBudget(self.settings.shutdown_timeout)
        try:
            await self.halts.report(self._log)
            await self._stop_consuming(budget)
            await self._hooks.run_shutdown_within(self.container, self._log, budget.hooks)
        finally:
            try:
                await self._release()
            finally:
                # Whatever happened above, a second stop() (serve's) must not wait forever.
                self._stopping.set_result(None)

    async def _release(self) -> None:
        await self._container_run.release()
        if self.observation is not None:
            await self.observation.stop()

    async def _stop_consuming(self, budget: ShutdownBudget) -> None:
        if self._fleet is not None:
            await self._fleet.stop(budget, self._connections, self.halts)
        if self.observation is not None:
            await self.observation.consumers_stopped()
        if self._stats is not None:
            await self._stats.stop()

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
            with stop_signals(SignalCounter(self.halts.halted)):
                await start_unless_halted(self.start(), self.halts.halted, self.draining)
                # stop() called from elsewhere ends serve() too.
                await wait_first(self.halts.halted.wait(), self._stop_called.wait())
                await self.stop()
        finally:
            unroute_library_logs(library_logs)
        if self.halts:
            raise self.halts.failure()

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

"""The Orchestrator: discovers consumers, starts them, and stops them gracefully."""

import asyncio
import contextlib
import inspect
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from dependency_injector import containers, providers

from framework.clock import Clock, LoopClock
from framework.connection import close_timeout
from framework.consumer import ConsumerSettings
from framework.container import Container
from framework.discovery import ConsumerSource, discover
from framework.engine import Handler
from framework.errors import BulkworkerError
from framework.injection import build_consumer, wire_modules
from framework.log import EventLog, route_library_logs, unroute_library_logs
from framework.runner import ConsumerRunner
from framework.settings import load_environment

Hook = Callable[[Any], Awaitable[None]]
# RabbitMQ's default consumer_timeout, and the share of it that earns a warning.
BROKER_ACK_TIMEOUT = 1800.0
ACK_TIMEOUT_WARNING = 0.8
HookT = TypeVar("HookT", bound=Hook)


class WorkerCrashedError(BulkworkerError, RuntimeError):
    """A consumer's worker task ended with an unexpected error."""


class Orchestrator:
    """Runs a set of consumers against one container.

    Use ``run()`` in a program (blocks until SIGINT or SIGTERM), or
    ``async with Orchestrator(...)`` inside a running event loop.
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
        self._log: EventLog | None = None
        self._wired = False
        self._started = False
        self._stopping: asyncio.Future[None] | None = None
        self._crashed: asyncio.Event | None = None

    def __repr__(self) -> str:
        running = sum(runner.running for runner in self.runners)
        return f"<Orchestrator(consumers={len(self.runners)}, running={running})>"

    @property
    def config(self) -> providers.Configuration:
        """The container's ``config``, filled from the environment on start."""
        return cast(providers.Configuration, self.container.config)

    def on_startup(self, hook: HookT) -> HookT:
        """Register ``async def hook(container)``; all run before any message is handled."""
        self._startup_hooks.append(checked_hook(hook))
        return hook

    def on_shutdown(self, hook: HookT) -> HookT:
        """Register ``async def hook(container)``; run after consuming stopped."""
        self._shutdown_hooks.append(checked_hook(hook))
        return hook

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

    async def start(self) -> None:
        """Validate, connect, run startup hooks, then start consuming."""
        if self._started:
            raise BulkworkerError("this Orchestrator was started already; create a new one")
        self._started = True
        self._crashed = asyncio.Event()
        classes = discover(self._source)
        load_environment(self.config)
        flush_interval = float(self.config.get("flush_interval"))
        settings = [ConsumerSettings.of(cls, flush_interval) for cls in classes]
        try:
            await resolve(self.container.init_resources())
            self._log = await resolve(self.container.logger())
            wire_modules(self.container, classes)
            self._wired = True
            for hook in self._startup_hooks:
                await hook(self.container)
            connection = await resolve(self.container.connection())
            publisher = await resolve(self.container.publisher())
            built = [await build_consumer(cls, self.container) for cls in classes]
            for (_, handler), consumer_settings in zip(built, settings, strict=True):
                await self._start_consumer(handler, consumer_settings, connection, publisher)
        except BaseException:
            await self.stop()
            raise

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
            retry_max_delay=float(self.config.get("reconnect_max_delay") or 30.0),
        )
        self.runners.append(runner)
        await runner.start()
        assert runner.worker is not None
        runner.worker.add_done_callback(self._on_worker_done)
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
        if self._log is not None and worst_case >= ACK_TIMEOUT_WARNING * BROKER_ACK_TIMEOUT:
            await self._log.warning(
                "flush_interval plus handler_timeout come near RabbitMQ's consumer ack timeout",
                extra={
                    "consumer": settings.name,
                    "seconds": worst_case,
                    "broker_ack_timeout": BROKER_ACK_TIMEOUT,
                    "handler_timeout": settings.handler_timeout,
                },
            )

    def _on_worker_done(self, worker: "asyncio.Task[None]") -> None:
        if not worker.cancelled() and worker.exception() is not None and self._crashed:
            self._crashed.set()

    async def stop(self) -> None:
        """Stop gracefully; calling it again waits for the first call to finish."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        self._stopping = asyncio.get_running_loop().create_future()
        reserve = close_timeout(float(self.config.get("shutdown_timeout") or 30.0))
        try:
            await self._stop_consumers()
            await self._run_shutdown_hooks(reserve)
        finally:
            if self._wired:
                self.container.unwire()
            await resolve(self.container.shutdown_resources())
            self._stopping.set_result(None)

    async def _stop_consumers(self) -> None:
        # The shutdown timeout covers it all: draining first, then one reserve
        # each for shutdown hooks, closing channels, and closing connections.
        timeout = float(self.config.get("shutdown_timeout") or 30.0)
        reserve = close_timeout(timeout)
        try:
            async with asyncio.timeout(timeout - 3 * reserve):
                await asyncio.gather(*(runner.cancel() for runner in self.runners))
                await asyncio.gather(*(runner.drain() for runner in self.runners))
        except TimeoutError:
            await self._warn_unsettled(timeout)
            for runner in self.runners:
                await runner.abort()
        closed = await asyncio.gather(*(runner.close(reserve) for runner in self.runners))
        if not all(closed) and self._log is not None:
            await self._log.warning("RabbitMQ did not answer channel closes in time")
        for runner in self.runners:
            await self._report_crash(runner)
            await self._report_stop(runner)

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

    async def _report_crash(self, runner: ConsumerRunner) -> None:
        worker = runner.worker
        if worker is None or not worker.done() or worker.cancelled():
            return
        error = worker.exception()
        if error is not None and self._log is not None:
            await self._log.error(
                "consumer worker crashed",
                extra={"consumer": runner.settings.name},
                exc_info=error,
            )

    async def _run_shutdown_hooks(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                for hook in self._shutdown_hooks:
                    await self._quietly(hook(self.container), f"shutdown hook {hook_name(hook)}")
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
        """Run until SIGINT or SIGTERM (or a crashed worker), then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        signals = SignalCounter(stop)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, signals.received)
        load_environment(self.config)
        library_logs = route_library_logs(self.config.get("log_level"))
        try:
            async with self:
                assert self._crashed is not None
                await wait_first(stop.wait(), self._crashed.wait())
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            unroute_library_logs(library_logs)
        if self._crashed is not None and self._crashed.is_set():
            raise WorkerCrashedError("a consumer's worker crashed; see the log for the traceback")

    def run(self) -> None:
        """Block until SIGINT or SIGTERM, then shut down gracefully (uvloop if installed)."""
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self.serve())


class SignalCounter:
    """First signal: stop gracefully. Second: leave at once; the broker requeues."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop

    def received(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            return
        sys.stderr.write("bulkworker: second signal, exiting now\n")
        sys.stderr.flush()
        os._exit(1)


async def wait_first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def resolve(value: Any) -> Any:
    """Await ``value`` if a provider handed back an awaitable (async resources do)."""
    return await value if inspect.isawaitable(value) else value


def checked_hook(hook: HookT) -> HookT:
    if not inspect.iscoroutinefunction(hook):
        raise TypeError(f"hook {hook_name(hook)} must be 'async def {hook_name(hook)}(container)'")
    return cast(HookT, hook)


def hook_name(hook: Callable[..., Any]) -> str:
    return getattr(hook, "__qualname__", repr(hook))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory

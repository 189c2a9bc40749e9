"""What an orchestrator shows of itself: metrics, the loop's lag and the HTTP probes.

Kept apart from the orchestrator, which only says when it starts, has started
consuming, drains and has stopped; the probes read its state through the
functions it hands over.
"""

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from framework.config.deployment import Deployment
from framework.core.consumer import ConsumerSettings
from framework.core.tasks import cancelled
from framework.core.watch import Watcher, Watchers
from framework.observe.health import Health, liveness, readiness
from framework.observe.health_file import HEALTH_EVERY, write_health
from framework.observe.http import ProbeServer, metrics_text
from framework.observe.loop_lag import LagMonitor
from framework.observe.metrics import ConsumerMetrics, Sampler, TaskMetrics
from framework.observe.tracing import BulkTracing, tracing_available

Connections = Callable[[], Iterable[tuple[str, str, Any]]]


class Observation:
    """The metrics, the lag monitor and the probe server of one orchestrator."""

    def __init__(
        self,
        settings: Deployment,
        runners: Callable[[], Iterable[Any]],
        connections: Connections,
        draining: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self._runners = runners
        self._connections = connections
        self._draining = draining
        self.consuming = False
        self.lag = LagMonitor()
        self.sampler = Sampler(runners, connections)
        self.probes: ProbeServer | None = None
        # Under a supervisor: where this worker reports its health.
        self.health_file: Path | None = None
        self._reporter: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Observation metrics={self.settings.metrics} probes={self.probes}>"

    async def start(self, watchers: Watchers) -> None:
        """Before connecting: the probes answer (not ready) while the broker is awaited."""
        self.lag.start()
        if self.settings.metrics:
            watchers.add(TaskMetrics())
        if tracing_available():
            watchers.add(BulkTracing())
        if self.settings.http_port is not None:
            self.probes = ProbeServer(
                self.settings.http_host,
                self.settings.http_port,
                self.live,
                self.ready,
                self.metrics_text,
            )
            await self.probes.start()
        if self.health_file is not None:
            self._reporter = asyncio.create_task(self._report_health(self.health_file))

    def consumer_watcher(self, shared: Watcher, settings: ConsumerSettings) -> Watcher:
        """What one consumer's engine tells: the shared watchers, and its metrics."""
        if not self.settings.metrics:
            return shared
        return Watchers([shared, ConsumerMetrics(settings.name, settings.bulk_size)])

    def started_consuming(self) -> None:
        self.consuming = True
        if self.settings.metrics:
            self.sampler.start()

    async def consumers_stopped(self) -> None:
        self.consuming = False
        if self.settings.metrics:
            await self.sampler.stop()

    async def stop(self) -> None:
        """Last of all: the probes answer until the worker is gone."""
        if self.probes is not None:
            await self.probes.stop()
        await cancelled(self._reporter)
        await self.lag.stop()

    async def _report_health(self, path: Path) -> None:
        while True:
            write_health(path, self.live(), self.ready())
            await asyncio.sleep(HEALTH_EVERY)

    def live(self) -> Health:
        return liveness(self.lag)

    def ready(self) -> Health:
        return readiness(self.consuming, self._draining(), self._connections(), self._runners())

    def metrics_text(self) -> bytes:
        if self.settings.metrics:
            self.sampler.refresh()
        return metrics_text()

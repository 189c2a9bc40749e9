"""The worker's HTTP endpoints: ``/metrics``, ``/health/live`` and ``/health/ready``.

Served by aiohttp on the worker's own event loop, so a loop that stops
answering fails its probes. Off unless a port is given.
"""

import json
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from framework.observe.health import Health

HealthSource = Callable[[], Health]


def metrics_text(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)


class ProbeServer:
    """An aiohttp server for the metrics and the two probes; ``port`` is the one it got."""

    def __init__(
        self,
        host: str,
        port: int,
        live: HealthSource,
        ready: HealthSource,
        metrics: Callable[[], bytes] = metrics_text,
    ) -> None:
        self.host = host
        self.port = port
        self._live = live
        self._ready = ready
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        return f"<ProbeServer http://{self.host}:{self.port}>"

    def _application(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/metrics", self._serve_metrics)
        application.router.add_get("/health/live", self._serve_live)
        application.router.add_get("/health/ready", self._serve_ready)
        return application

    async def start(self) -> None:
        runner = web.AppRunner(self._application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise OSError(
                error.errno, f"cannot serve HTTP on {self.host}:{self.port}: {error.strerror}"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body = self._metrics()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _serve_live(self, request: web.Request) -> web.Response:
        return answer(self._live())

    async def _serve_ready(self, request: web.Request) -> web.Response:
        return answer(self._ready())


def answer(health: Health) -> web.Response:
    return web.Response(
        text=json.dumps(health.shown()),
        status=200 if health.ok else 503,
        content_type="application/json",
    )

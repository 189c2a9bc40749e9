"""The HTTP probes on the real broker: ready only when consuming, live whatever the broker does."""

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from framework import BulkConsumer, Message, Orchestrator
from tests.broker import Broker, wait_until
from tests.conftest import recorded
from tests.proxy import TcpProxy
from tests.test_cli import run_cli


async def probe(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, json.loads(await response.text())


def consumer_for(queue: str, gate: asyncio.Event | None = None) -> type[BulkConsumer]:
    class Probed(BulkConsumer):
        queues = [queue]
        bulk_size = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            if gate is not None:
                await gate.wait()

    return Probed


def port_of(orchestrator: Orchestrator) -> int:
    assert orchestrator.observation is not None
    assert orchestrator.observation.probes is not None
    return orchestrator.observation.probes.port


async def status(port: int, path: str) -> int:
    return (await probe(port, path))[0]


async def test_ready_follows_the_connection_and_live_does_not(
    broker: Broker, proxy: TcpProxy
) -> None:
    """A cut broker turns ready 503 with the reason; live stays 200; both recover."""
    queue = broker.queue_name("probe-cut")
    await broker.declare(queue)
    container, _ = recorded(proxy.url + "?reconnect_interval=0.2", http_port=0)
    orchestrator = Orchestrator([consumer_for(queue)], container)
    async with orchestrator:
        port = port_of(orchestrator)
        code, body = await probe(port, "/health/ready")
        assert (200, "ok") == (code, body["status"])
        proxy.refusing = True
        proxy.cut()
        await wait_until(lambda: _has(port, "/health/ready", 503), timeout=10)
        code, body = await probe(port, "/health/ready")
        failing = {k: v["reason"] for k, v in body["components"].items() if v["status"] != "ok"}
        assert "connection down: reconnecting" == failing["connection:default:consuming"]
        assert 200 == await status(port, "/health/live")
        proxy.refusing = False
        await wait_until(lambda: _has(port, "/health/ready", 200), timeout=20)


async def test_ready_is_503_when_the_queue_loses_our_consumer(broker: Broker) -> None:
    """Deleting the queue cancels our consumer: ready names the queue until it is back."""
    queue = broker.queue_name("probe-queue")
    await broker.declare(queue)
    container, _ = recorded(http_port=0, reconnect_max_delay=1.0)
    orchestrator = Orchestrator([consumer_for(queue)], container)
    async with orchestrator:
        port = port_of(orchestrator)
        assert 200 == await status(port, "/health/ready")
        channel = await broker.connection.channel()
        await channel.queue_delete(queue)
        await wait_until(lambda: _has(port, "/health/ready", 503), timeout=10)
        _, body = await probe(port, "/health/ready")
        component = body["components"][f"consumer:Probed:{queue}"]
        assert "no consumer registered on the broker" == component["reason"]
        await wait_until(lambda: _has(port, "/health/ready", 200), timeout=30)


async def test_ready_is_503_while_draining(broker: Broker) -> None:
    """From the first moment of a stop, ready says draining; live still answers."""
    queue = broker.queue_name("probe-drain")
    await broker.declare(queue)
    gate = asyncio.Event()
    container, _ = recorded(http_port=0)
    orchestrator = Orchestrator([consumer_for(queue, gate)], container)
    await orchestrator.start()
    port = port_of(orchestrator)
    await broker.publish(queue, {"n": 1})
    await wait_until(lambda: orchestrator.runners[0].engine.idle is False)
    stopping = asyncio.create_task(orchestrator.stop())
    await wait_until(lambda: _has(port, "/health/ready", 503))
    _, body = await probe(port, "/health/ready")
    assert "stopping: draining" == body["components"]["draining"]["reason"]
    assert 200 == await status(port, "/health/live")
    gate.set()
    await stopping


async def test_live_fails_while_the_loop_is_blocked(broker: Broker) -> None:
    """A handler blocking the loop: the probe gets no answer in time, then a late-loop 503."""
    queue = broker.queue_name("probe-blocked")
    await broker.declare(queue)
    container, _ = recorded(http_port=0)

    class Blocking(BulkConsumer):
        queues = [queue]
        bulk_size = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            time.sleep(1.5)  # synchronous: nothing else on the loop runs

    orchestrator = Orchestrator([Blocking], container)
    async with orchestrator:
        port = port_of(orchestrator)
        assert orchestrator.observation is not None
        orchestrator.observation.lag.limit = 0.5
        await broker.publish(queue, {"n": 1})
        answered = await asyncio.to_thread(_probe_in_thread, port)
        assert answered in ("timeout", 503)
        await wait_until(lambda: orchestrator.observation.lag.latest > 0.5, timeout=10)  # type: ignore[union-attr]


def _probe_in_thread(port: int) -> Any:
    import urllib.error
    import urllib.request

    time.sleep(0.3)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=0.5) as r:
            return r.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return "timeout"


async def _has(port: int, path: str, expected: int) -> bool:
    try:
        return expected == await status(port, path)
    except aiohttp.ClientError:
        return False


@pytest.mark.parametrize("port", ["-1", "http", "70000"])
def test_a_bad_http_port_is_a_clear_error(port: str) -> None:
    """BULKWORKER_HTTP_PORT must be a port number."""
    from framework import ConfigurationError
    from framework.config.deployment import resolve_deployment

    with pytest.raises(ConfigurationError, match="BULKWORKER_HTTP_PORT must be a TCP port"):
        resolve_deployment({}, {"BULKWORKER_HTTP_PORT": port})


async def test_check_ready_is_an_exec_probe(broker: Broker) -> None:
    """`bulkworker check --ready URL`: exit 0 while ready, 1 with the reason while draining."""
    queue = broker.queue_name("probe-exec")
    await broker.declare(queue)
    gate = asyncio.Event()
    container, _ = recorded(http_port=0)
    orchestrator = Orchestrator([consumer_for(queue, gate)], container)
    await orchestrator.start()
    url = f"http://127.0.0.1:{port_of(orchestrator)}/health/ready"
    ok = await asyncio.to_thread(run_cli, "check", "--ready", url)
    assert (0, f"{url}: ready\n") == (ok.returncode, ok.stdout)
    await broker.publish(queue, {"n": 1})
    await wait_until(lambda: orchestrator.runners[0].engine.idle is False)
    stopping = asyncio.create_task(orchestrator.stop())
    await wait_until(lambda: _has(port_of(orchestrator), "/health/ready", 503))
    failing = await asyncio.to_thread(run_cli, "check", "--ready", url)
    gate.set()
    await stopping
    assert 1 == failing.returncode
    assert "answered 503: draining: stopping: draining" in failing.stderr
    gone = await asyncio.to_thread(run_cli, "check", "--ready", url)
    assert 1 == gone.returncode
    assert "did not answer" in gone.stderr

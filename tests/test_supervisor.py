"""`bulkworker run --workers N`: dead workers restarted, metrics aggregated, all stopped."""

import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from framework.runtime.shutdown import ShutdownBudget
from framework.runtime.supervisor import EXIT_GRACE
from tests.broker import Broker, wait_until
from tests.test_cli import BULKWORKER, ROOT, environment, kill_if_running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(*options: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.envconsumer", *options],
        cwd=ROOT,
        env=environment(BULKWORKER_LOG_FORMAT="json", **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def worker_pids(supervisor: subprocess.Popen[bytes]) -> list[int]:
    """The supervisor's worker processes (spawn also starts a resource tracker: skipped)."""
    found = subprocess.run(
        ["pgrep", "-P", str(supervisor.pid), "-f", "spawn_main"],
        capture_output=True,
        text=True,
    )
    return [int(pid) for pid in found.stdout.split()]


async def get(port: int, path: str) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(f"http://127.0.0.1:{port}{path}") as response,
        ):
            return response.status, await response.text()
    except aiohttp.ClientError:
        return 0, ""


async def ready(port: int) -> bool:
    return 200 == (await get(port, "/health/ready"))[0]


async def metric(port: int, name: str, **labels: str) -> float:
    _, text = await get(port, "/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_killed_worker_is_restarted_and_the_totals_still_add_up(
    broker: Broker, tmp_path: Path
) -> None:
    """SIGKILL one of two workers: it comes back, restarts count 1, acks sum to what was sent."""
    queue = broker.queue_name("workers")
    await broker.declare(queue)
    output, port = tmp_path / "out", free_port()
    supervisor = start(
        "--workers",
        "2",
        "--http-port",
        str(port),
        TEST_QUEUE=queue,
        TEST_OUTPUT=str(output),
        TEST_BULK_SIZE="10",
        TEST_FLUSH_INTERVAL="0.2",
    )
    try:
        await wait_until(lambda: ready(port), timeout=30)
        assert 2 == len(worker_pids(supervisor))
        for n in range(200):
            await broker.publish(queue, {"n": n})
        await wait_until(lambda: len(lines(output)) == 200, timeout=30)
        victim = worker_pids(supervisor)[0]
        await asyncio.sleep(0.5)  # let the last acks out
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        await wait_until(lambda: _equals(metric(port, "bulkworker_worker_restarts_total"), 1))
        await wait_until(lambda: ready(port), timeout=30)
        assert victim not in worker_pids(supervisor)
        for n in range(200, 300):
            await broker.publish(queue, {"n": n})
        await wait_until(lambda: len(lines(output)) == 300, timeout=30)
        acked = lambda: metric(  # noqa: E731
            port, "bulkworker_messages_settled_total", queue=queue, outcome="ack"
        )
        await wait_until(lambda: _equals(acked(), 300), timeout=10)
        supervisor.send_signal(signal.SIGTERM)
        _, errors = supervisor.communicate(timeout=45)
    finally:
        kill_if_running(supervisor)
    assert 0 == supervisor.returncode, errors
    assert list(range(300)) == sorted(line["n"] for line in lines(output))
    assert 0 == await broker.ready_count(queue)


async def _equals(value: Any, expected: float) -> bool:
    return expected == await value


def test_a_bad_setting_fails_at_once_without_workers() -> None:
    """A configuration error is one line and exit 1 before any worker starts."""
    started = time.monotonic()
    result = subprocess.run(
        [*BULKWORKER, "run", "tests.apps.envconsumer", "--workers", "2"],
        cwd=ROOT,
        env=environment(BULKWORKER_FLUSH_INTERVAL="soon"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert 1 == result.returncode
    assert "BULKWORKER_FLUSH_INTERVAL must be a number of seconds" in result.stderr
    assert "worker 0" not in result.stderr  # none was started
    assert time.monotonic() - started < 20  # one process start, on a busy machine


def test_workers_that_cannot_start_are_not_restarted_in_a_loop() -> None:
    """No broker for the workers: each exits before it is ready; the supervisor exits 1 fast."""
    started = time.monotonic()
    result = subprocess.run(
        [*BULKWORKER, "run", "tests.apps.envconsumer", "--workers", "2"],
        cwd=ROOT,
        env=environment(
            BULKWORKER_AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
            BULKWORKER_CONNECT_TIMEOUT="1",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 1 == result.returncode
    assert "before it was ever ready: not restarting" in result.stderr
    assert "restarting it in" not in result.stderr
    # Three process starts on a busy machine; a restart loop would pause 15 s more.
    assert time.monotonic() - started < 30


async def test_sigterm_with_full_buffers_hands_everything_over_in_time(
    broker: Broker, tmp_path: Path
) -> None:
    """Two workers holding partial bulks: SIGTERM drains both within the shutdown timeout."""
    queue = broker.queue_name("workers-stop")
    await broker.declare(queue)
    output, port = tmp_path / "out", free_port()
    supervisor = start(
        "--workers",
        "2",
        "--http-port",
        str(port),
        TEST_QUEUE=queue,
        TEST_OUTPUT=str(output),
        TEST_BULK_SIZE="1000",
        TEST_FLUSH_INTERVAL="600",
        BULKWORKER_SHUTDOWN_TIMEOUT="10",
    )
    try:
        await wait_until(lambda: ready(port), timeout=30)
        for n in range(500):
            await broker.publish(queue, {"n": n})
        buffered = lambda: metric(port, "bulkworker_buffered_messages")  # noqa: E731
        await wait_until(lambda: _equals(buffered(), 500), timeout=30)
        stopping = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        _, errors = supervisor.communicate(timeout=30)
        took = time.monotonic() - stopping
    finally:
        kill_if_running(supervisor)
    assert 0 == supervisor.returncode, errors
    # Everything was handed over (below), so no step hit its limit; the rest is three
    # processes leaving, which the supervisor bounds.
    assert took < ShutdownBudget(10.0).total + EXIT_GRACE
    assert list(range(500)) == sorted(line["n"] for line in lines(output))
    assert 0 == await broker.ready_count(queue)


async def test_a_worker_that_never_stops_is_killed_once_its_budget_is_spent(
    broker: Broker, tmp_path: Path
) -> None:
    """A worker whose loop is blocked ignores SIGTERM: the supervisor kills it after the
    shutdown budget and exits 0 in time, saying which worker it killed."""
    queue = broker.queue_name("workers-blocked")
    await broker.declare(queue)
    started = tmp_path / "started"
    supervisor = subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.stops", "--workers", "2"],
        cwd=ROOT,
        env=environment(
            TEST_QUEUE=queue,
            TEST_MODE="block",
            TEST_STARTED=str(started),
            BULKWORKER_SHUTDOWN_TIMEOUT="1",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_until(lambda: len(worker_pids(supervisor)) == 2, timeout=30)
        workers = worker_pids(supervisor)
        await broker.publish_ids(queue, range(20))
        await wait_until(started.exists, timeout=30)
        stopping = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        _, errors = supervisor.communicate(timeout=60)
        took = time.monotonic() - stopping
    finally:
        kill_if_running(supervisor)
    bound = ShutdownBudget(1.0).total + EXIT_GRACE
    assert 0 == supervisor.returncode, errors
    assert bound <= took < bound + 10
    assert b"did not stop within" in errors
    assert [] == [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    await wait_until(lambda: _equals(broker.ready_count(queue), 20), timeout=30)

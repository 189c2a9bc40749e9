"""Stops of a real `bulkworker run` process: bounded in every phase, never a silent death."""

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Broker, wait_until
from tests.private_broker import PrivateBroker
from tests.proxy import TcpProxy
from tests.test_cli import BULKWORKER, ROOT, environment

SHUTDOWN_TIMEOUT = 4.0
# Process start-up and teardown on a busy machine, on top of the promised bound.
SLACK = 5.0
NOISE = ("never retrieved", "Task was destroyed but it is pending", "Traceback")


class Worker:
    """`bulkworker run tests.apps.stops` with its output in files."""

    def __init__(self, process: asyncio.subprocess.Process, stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout_path = stdout
        self.stderr_path = stderr

    @classmethod
    async def start(cls, tmp_path: Path, **env: str) -> "Worker":
        stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *BULKWORKER,
                "run",
                "tests.apps.stops",
                cwd=ROOT,
                env=environment(
                    BULKWORKER_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
                    BULKWORKER_CONNECT_TIMEOUT="60",
                    **env,
                ),
                stdout=out,
                stderr=err,
            )
        return cls(process, stdout, stderr)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def records(self) -> list[dict[str, Any]]:
        lines = self.stdout_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logged(self, message: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("msg") == message]

    async def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; return the seconds until the process was gone."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        await self.wait(timeout)
        return time.monotonic() - sent

    async def wait(self, timeout: float = 30.0) -> int:
        """The exit code; a process still running after ``timeout`` is killed."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            await self.kill_if_running()

    async def kill_if_running(self) -> None:
        """Kill a process a test gave up on and wait for it, so that it is not left behind."""
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def test_sigterm_while_the_broker_is_down_stops_at_once(tmp_path: Path) -> None:
    """SIGTERM while the first connection is retried (broker down): exit 0 at once, no wait."""
    worker = await Worker.start(tmp_path, BULKWORKER_AMQP_URL="amqp://guest:guest@127.0.0.1:1/")
    try:
        await wait_until(lambda: len(worker.logged("RabbitMQ unreachable, retrying")) >= 2)
        elapsed = await worker.terminate()
    finally:
        await worker.kill_if_running()
    assert 0 == worker.process.returncode
    assert elapsed < SHUTDOWN_TIMEOUT + SLACK
    assert "" == worker.stderr


async def test_sigterm_while_declaring_on_a_silent_broker_is_bounded(
    broker: Broker, proxy: TcpProxy, tmp_path: Path
) -> None:
    """Connected, then the broker goes silent while declaring: SIGTERM still exits 0 in time."""
    queue = broker.queue_name("stop-declaring")
    pause, resume = tmp_path / "pause", tmp_path / "resume"
    worker = await Worker.start(
        tmp_path,
        BULKWORKER_AMQP_URL=proxy.url,
        TEST_QUEUE=queue,
        TEST_PAUSE=str(pause),
        TEST_RESUME=str(resume),
    )
    try:
        await wait_until(pause.exists, timeout=30)
        proxy.black_hole()
        resume.touch()
        await asyncio.sleep(0.5)
        elapsed = await worker.terminate()
    finally:
        await worker.kill_if_running()
    assert 0 == worker.process.returncode
    assert elapsed < SHUTDOWN_TIMEOUT + SLACK
    assert [] == worker.logged("consumer started")
    assert not any(noise in worker.stderr for noise in NOISE), worker.stderr


async def test_sigterm_with_a_handler_that_ignores_cancellation_is_bounded(
    broker: Broker, tmp_path: Path
) -> None:
    """handle swallows CancelledError: SIGTERM exits 0 in time, the bulk is back in the queue."""
    queue = broker.queue_name("stop-swallow")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    started = tmp_path / "started"
    worker = await Worker.start(
        tmp_path, TEST_QUEUE=queue, TEST_MODE="swallow", TEST_STARTED=str(started)
    )
    try:
        await wait_until(started.exists, timeout=30)
        elapsed = await worker.terminate()
    finally:
        await worker.kill_if_running()
    assert 0 == worker.process.returncode
    assert elapsed < SHUTDOWN_TIMEOUT + SLACK
    [abandoned] = worker.logged(
        "consumer worker ignored cancellation: abandoned, its unsettled messages "
        "go back to the queue when the channel closes"
    )
    assert ("Misbehaving", 5) == (abandoned["consumer"], abandoned["unsettled"])
    await wait_until(lambda: ready_is(broker, queue, 5))
    assert not any(noise in worker.stderr for noise in NOISE), worker.stderr


async def test_a_cancelled_worker_stops_the_process_with_exit_1(
    broker: Broker, tmp_path: Path
) -> None:
    """The worker task is cancelled: one log line, one stderr line, exit 1, bulk requeued."""
    queue = broker.queue_name("stop-cancelled")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(3))
    worker = await Worker.start(tmp_path, TEST_QUEUE=queue, TEST_MODE="cancel")
    code = await worker.wait(timeout=30)
    assert 1 == code
    [line] = worker.stderr.splitlines()
    assert line.startswith("bulkworker: error: the worker of consumer Misbehaving ended")
    [ended] = worker.logged("consumer worker ended: stopping")
    assert ("Misbehaving", "cancelled", "ERROR") == (
        ended["consumer"],
        ended["cause"],
        ended["level"],
    )
    await wait_until(lambda: ready_is(broker, queue, 3))


async def test_stop_during_a_memory_alarm_prints_no_never_retrieved_warnings(
    private_broker: PrivateBroker, tmp_path: Path
) -> None:
    """Dead letters blocked by a memory alarm, then SIGTERM: exit 0 in time, quiet stderr."""
    node = await Broker.connect(private_broker.url)
    queue = node.queue_name("stop-alarm")
    try:
        await node.declare(queue)
        await node.publish_ids(queue, range(20))
        private_broker.memory_alarm(True)
        started = tmp_path / "started"
        worker = await Worker.start(
            tmp_path,
            BULKWORKER_AMQP_URL=private_broker.url,
            TEST_QUEUE=queue,
            TEST_MODE="raise",
            TEST_ON_EXCEPTION="REJECT",
            TEST_STARTED=str(started),
        )
        try:
            await wait_until(started.exists, timeout=30)
            await asyncio.sleep(1.0)
            elapsed = await worker.terminate()
        finally:
            await worker.kill_if_running()
    finally:
        private_broker.memory_alarm(False)
    try:
        assert 0 == worker.process.returncode
        assert elapsed < SHUTDOWN_TIMEOUT + SLACK
        assert not any(noise in worker.stderr for noise in NOISE), worker.stderr
        await wait_until(lambda: ready_is(node, queue, 20))
    finally:
        await node.close()


async def ready_is(broker: Broker, queue: str, expected: int) -> bool:
    return expected == await broker.ready_count(queue)


async def test_sigterm_while_consuming_stops_in_time(broker: Broker, tmp_path: Path) -> None:
    """SIGTERM while idle and consuming: exit 0 well within the shutdown timeout."""
    queue = broker.queue_name("stop-consuming")
    worker = await Worker.start(tmp_path, TEST_QUEUE=queue)
    try:
        await wait_until(lambda: worker.logged("consumer started"), timeout=30)
        elapsed = await worker.terminate()
    finally:
        await worker.kill_if_running()
    assert 0 == worker.process.returncode
    assert elapsed < SHUTDOWN_TIMEOUT + SLACK
    assert ["Misbehaving"] == [record["consumer"] for record in worker.logged("consumer stopped")]
    assert "" == worker.stderr


async def test_sigterm_after_a_cut_and_reconnect_stops_in_time(
    broker: Broker, proxy: TcpProxy, tmp_path: Path
) -> None:
    """The connection was cut and restored: SIGTERM still exits 0 within the bound, quietly."""
    queue = broker.queue_name("stop-after-cut")
    worker = await Worker.start(tmp_path, BULKWORKER_AMQP_URL=proxy.url, TEST_QUEUE=queue)
    try:
        await wait_until(lambda: worker.logged("consumer started"), timeout=30)
        proxy.cut()
        await wait_until(lambda: len(worker.logged("RabbitMQ connection restored")) >= 2, 30)
        await wait_until(lambda: consumers_are(broker, queue, 1), timeout=30)
        elapsed = await worker.terminate()
    finally:
        await worker.kill_if_running()
    assert 0 == worker.process.returncode
    assert elapsed < SHUTDOWN_TIMEOUT + SLACK
    assert not any(noise in worker.stderr for noise in NOISE), worker.stderr


async def consumers_are(broker: Broker, queue: str, expected: int) -> bool:
    return expected == await broker.consumer_count(queue)


async def test_sys_exit_in_handle_stops_gracefully_with_its_code(
    broker: Broker, tmp_path: Path
) -> None:
    """handle calls sys.exit(3): the bulk fails (retried), one log line, exit status 3."""
    queue = broker.queue_name("stop-exit")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    worker = await Worker.start(tmp_path, TEST_QUEUE=queue, TEST_MODE="exit")
    code = await worker.wait(timeout=30)
    assert 3 == code
    # One line per handle call that asked (a retried bulk may ask again while draining).
    asked = worker.logged("handle asked to exit: stopping")
    assert {("Misbehaving", 3)} == {(line["consumer"], line["exit_code"]) for line in asked}
    assert not any(noise in worker.stderr for noise in NOISE), worker.stderr
    # The failed bulk went back for another attempt; nothing was lost.
    await wait_until(lambda: ready_is(broker, queue, 5))
    retried = await broker.drain(queue)
    assert list(range(5)) == sorted(json.loads(m.body)["id"] for m in retried)
    assert all(m.headers["x-bulkworker-attempts"] >= 1 for m in retried)


@pytest.mark.parametrize(("raised", "status"), [("SystemExit", 0), ("KeyboardInterrupt", 130)])
async def test_a_decoder_asking_to_exit_dead_letters_its_message_and_stops_gracefully(
    broker: Broker, tmp_path: Path, raised: str, status: int
) -> None:
    """The decoder raises SystemExit / KeyboardInterrupt on one body: that message is
    dead-lettered (no crash loop on the next start), the stop is graceful, nothing is lost."""
    queue = broker.queue_name("decoder-exit")
    await broker.declare(queue)
    for body in (b"good-1", b"bad", b"good-2"):
        await broker.publish(queue, body, content_type=None)
    output = tmp_path / "handled"
    output.touch()
    process = await asyncio.create_subprocess_exec(
        *BULKWORKER,
        "run",
        "tests.apps.exiting_decoder",
        cwd=ROOT,
        env=environment(TEST_QUEUE=queue, TEST_OUTPUT=str(output), TEST_DECODER_RAISES=raised),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    assert status == process.returncode
    assert not any(noise in stderr.decode() for noise in NOISE), stderr
    [dead] = await broker.drain(f"{queue}.dlq")
    assert (b"bad", "undecodable") == (dead.body, dead.headers["x-bulkworker-reason"])
    handled = [json.loads(line) for line in output.read_text().splitlines()]
    left = [m.body.decode() for m in await broker.drain(queue)]
    assert ["good-1", "good-2"] == sorted(handled + left)

"""Sink outages on the real broker: nothing dead-lettered, nothing lost, no hot loop,
the broker's consumer timeout respected, and a stop while paused leaves every message
in its queue."""

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from framework import BulkConsumer, Message, Orchestrator
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded
from tests.private_broker import PrivateBroker

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent


class ToggledSink:
    """A store that refuses connections while ``down``; records every call and every row."""

    def __init__(self) -> None:
        self.down = True
        self.calls: list[float] = []
        self.rows: list[int] = []

    async def write(self, ids: list[int]) -> None:
        self.calls.append(time.monotonic())
        if self.down:
            raise ConnectionRefusedError("connect call failed ('127.0.0.1', 5432)")
        self.rows.extend(ids)


async def test_a_sink_down_for_60_seconds_loses_and_dead_letters_nothing(
    broker: Broker,
) -> None:
    """max_retries=1, the sink down for 60 s: every message stored once after, probes back off."""
    queue = broker.queue_name("outage")
    sink = ToggledSink()
    container, log = recorded(AMQP_URL, log_stats_interval=0)

    class Orders(BulkConsumer):
        queues = [queue]
        bulk_size = 50
        flush_interval = 0.2
        max_retries = 1
        outage_backoff_max = 10

        async def handle(self, messages: list[Message[Any]]) -> None:
            await sink.write([m.body["id"] for m in messages])

    async with Orchestrator([Orders], container) as orchestrator:
        await broker.publish_ids(queue, range(500))
        await wait_until(lambda: orchestrator.runners[0].engine.paused)
        opened = time.monotonic()
        await asyncio.sleep(60 - (time.monotonic() - sink.calls[0]))
        calls_while_down = list(sink.calls)
        held = len(orchestrator.runners[0].engine.outage.held)
        sink.down = False
        recovered_from = time.monotonic()
        await wait_until(lambda: len(sink.rows) >= 500, timeout=30)
        recovery = time.monotonic() - recovered_from
        await wait_until(lambda: orchestrator.runners[0].engine.idle)
    assert list(range(500)) == sorted(sink.rows)  # each once
    assert 0 == await broker.ready_count(f"{queue}.dlq")
    assert 0 == await broker.ready_count(queue)
    gaps = [b - a for a, b in itertools.pairwise(calls_while_down)]
    # The first failure, then one probe per step: 1, 2, 4, 8, 10, 10 … seconds apart.
    steps = [1, 2, 4, 8] + [10] * 20
    assert all(gap >= step * 0.95 for gap, step in zip(gaps, steps, strict=False)), gaps
    assert 6 <= len(calls_while_down) <= 10, calls_while_down
    assert held == 50
    assert recovery < 15
    assert ["sink unavailable: consumer paused"] == [
        m for m in log.messages("warning") if "paused" in m
    ]
    assert 1 == len([m for m in log.messages("warning") if m.startswith("sink available again")])
    print(
        f"\noutage timeline: paused {opened - sink.calls[0]:.2f}s after the first failure, "
        f"held {held}, handle calls while down {len(calls_while_down)}, "
        f"gaps {[round(g, 1) for g in gaps]}, all 500 stored {recovery:.2f}s after the sink "
        "came back"
    )


@pytest.fixture
async def short_timeout_node(private_broker: PrivateBroker) -> AsyncIterator[PrivateBroker]:
    """The private node with a 4 s consumer_timeout, checked every half second."""
    set_env = "application:set_env(rabbit, consumer_timeout, {}), " + (
        "application:set_env(rabbit, channel_tick_interval, {})."
    )
    await asyncio.to_thread(private_broker.ctl, "eval", set_env.format(4000, 500))
    try:
        yield private_broker
    finally:
        await asyncio.to_thread(private_broker.ctl, "eval", set_env.format(1800000, 60000))


async def test_a_held_bulk_never_hits_the_brokers_consumer_timeout(
    short_timeout_node: PrivateBroker,
) -> None:
    """Sink down 15 s, broker timeout 4 s: no channel closed, everything stored after."""
    node = short_timeout_node
    checker = await Broker.connect(node.url)
    queue = checker.queue_name("held")
    sink = ToggledSink()
    container, log = recorded(node.url, consumer_timeout=4, log_stats_interval=0)

    class Held(BulkConsumer):
        queues = [queue]
        bulk_size = 20
        flush_interval = 0.2
        max_retries = 1
        outage_backoff_max = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            await sink.write([m.body["id"] for m in messages])

    try:
        async with Orchestrator([Held], container) as orchestrator:
            await checker.publish_ids(queue, range(100))
            await wait_until(lambda: orchestrator.runners[0].engine.paused)
            await asyncio.sleep(15)
            sink.down = False
            await wait_until(lambda: len(set(sink.rows)) >= 100, timeout=30)
        assert set(range(100)) == set(sink.rows)
        assert 0 == await checker.ready_count(f"{queue}.dlq")
        assert 0 == await checker.ready_count(queue)
        logged = [m for level in ("warning", "error") for m in log.messages(level)]
        assert [] == [m for m in logged if "channel" in m or "connection lost" in m]
        assert 3 <= len([m for m in log.messages("info") if m.startswith("held messages given")])
    finally:
        await checker.close()


async def test_without_giving_back_the_broker_would_close_the_channel(
    short_timeout_node: PrivateBroker,
) -> None:
    """The timeout is real on this node: a delivery held 6 s unacked closes its channel."""
    checker = await Broker.connect(short_timeout_node.url)
    queue = checker.queue_name("timeout")
    try:
        holder = await Broker.connect(short_timeout_node.url)
        await holder.channel.set_qos(prefetch_count=1)
        source = await holder.channel.declare_queue(queue, durable=True)
        await checker.publish(queue, {"id": 1})
        held: list[Any] = []
        await source.consume(held.append)
        await wait_until(lambda: held)
        await wait_until(lambda: holder.channel.is_closed, timeout=10)
        with contextlib.suppress(Exception):
            await holder.connection.close()
    finally:
        await checker.close()


APP = """
import asyncio, os
from typing import Any
from framework import BulkConsumer, Message


class DownSink(BulkConsumer):
    queues = [os.environ["OUTAGE_QUEUE"]]
    bulk_size = 10
    flush_interval = 0.2
    max_retries = 1

    async def handle(self, messages: list[Message[Any]]) -> None:
        print("handle", len(messages), flush=True)
        raise ConnectionRefusedError("the database is down")
"""


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_while_paused_stops_in_time_and_leaves_every_message(
    broker: Broker, tmp_path: Path, workers: int
) -> None:
    """SIGTERM with the breaker open: out within the shutdown bound, all 60 back in the queue."""
    queue = broker.queue_name("paused-stop")
    package = tmp_path / "outage_app"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(APP))
    await broker.declare(queue)
    await broker.publish_ids(queue, range(60))
    environment = {
        **os.environ,
        "OUTAGE_QUEUE": queue,
        "BULKWORKER_AMQP_URL": AMQP_URL,
        "BULKWORKER_SHUTDOWN_TIMEOUT": "5",
        "BULKWORKER_LOG_FORMAT": "json",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "framework.cli", "run", "outage_app", "--workers", str(workers)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = asyncio.create_task(asyncio.to_thread(read_lines, process, lines))
    try:
        await wait_until(lambda: sum("consumer paused" in line for line in lines) >= 1, 60)
        await asyncio.sleep(1.5)  # through a probe or two
        stop_sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        stopped_after = time.monotonic() - stop_sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await reader
        assert process.stdout is not None
        process.stdout.close()
    assert 0 == code, "\n".join(lines[-30:])
    assert stopped_after < 5 + 5
    await wait_until(lambda: broker.ready_count(queue), timeout=10)
    assert 60 == await broker.ready_count(queue)
    assert 0 == await broker.ready_count(f"{queue}.dlq")
    assert Counter() == Counter(line for line in lines if "Traceback" in line)


def read_lines(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip())


async def test_a_reconnect_while_paused_waits_for_the_probe_before_consuming(
    broker: Broker, proxy: Any
) -> None:
    """A cut while paused: the new channel consumes nothing until a probe gets through."""
    queue = broker.queue_name("paused-cut")
    sink = ToggledSink()
    container, _ = recorded(proxy.url + "?reconnect_interval=0.2", log_stats_interval=0)

    class Cut(BulkConsumer):
        queues = [queue]
        bulk_size = 10
        flush_interval = 0.2
        outage_backoff = 3
        outage_backoff_max = 3

        async def handle(self, messages: list[Message[Any]]) -> None:
            await sink.write([m.body["id"] for m in messages])

    async with Orchestrator([Cut], container) as orchestrator:
        runner = orchestrator.runners[0]
        await broker.publish_ids(queue, range(30))
        await wait_until(lambda: runner.engine.paused)
        connections = proxy.connections
        proxy.cut()
        await wait_until(lambda: proxy.connections >= connections + 2, timeout=20)
        await asyncio.sleep(0.5)
        assert runner.engine.paused
        assert [] == runner.subscription.consuming
        assert 0 == await broker.consumer_count(queue)
        sink.down = False
        await wait_until(lambda: set(sink.rows) == set(range(30)), timeout=30)
        await wait_until(lambda: broker.consumer_count(queue), timeout=10)
    assert 0 == await broker.ready_count(f"{queue}.dlq")

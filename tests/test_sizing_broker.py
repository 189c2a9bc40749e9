"""Bulks by bytes and the adaptive bulk size on the real RabbitMQ: what handle got, all acked."""

import asyncio
import time
from typing import Any

from prometheus_client import generate_latest

from framework import BulkConsumer, Message, Orchestrator
from tests.broker import Broker, wait_until
from tests.conftest import recorded
from tests.test_metrics import delta, samples_of


async def test_bulks_by_bytes_on_the_broker(broker: Broker) -> None:
    """Bodies of 100 to 2,500 bytes under 4,000: no bulk passes it but a lone big one; all acked."""
    queue = broker.queue_name("bytes")
    await broker.declare(queue)
    lengths = [100 + (n * 37) % 900 for n in range(300)]
    lengths[50] = lengths[200] = 6000  # larger than the limit: each goes alone
    for n, length in enumerate(lengths):
        await broker.publish(queue, f"{n:05d}".encode() + b"x" * (length - 5), content_type=None)
    calls: list[list[int]] = []

    class ByBytes(BulkConsumer):
        queues = [queue]
        bulk_size = 50
        max_bulk_bytes = 4000
        flush_interval = 0.3
        decoder = staticmethod(lambda raw, content_type: raw)

        async def handle(self, messages: list[Message[Any]]) -> None:
            calls.append([len(m.raw) for m in messages])

    before = samples_of(generate_latest().decode())
    container, _ = recorded()
    async with Orchestrator([ByBytes], container) as orchestrator:
        await wait_until(lambda: sum(map(len, calls)) == 300, timeout=30)
        await wait_until(lambda: orchestrator.runners[0].engine.idle, timeout=10)
    after = samples_of(generate_latest().decode())
    assert sorted(lengths) == sorted(length for call in calls for length in call)
    assert [] == [call for call in calls if sum(call) > 4000 and len(call) > 1]
    assert [[6000], [6000]] == [call for call in calls if 6000 in call]
    assert delta(before, after, "bulkworker_bulks_total", consumer="ByBytes", reason="bytes") > 10
    assert sum(lengths) == delta(before, after, "bulkworker_bulk_bytes_sum", consumer="ByBytes")
    assert 0 == await broker.ready_count(queue)
    assert 0 == await broker.ready_count(f"{queue}.dlq")


async def test_adaptive_bulk_size_on_the_broker(broker: Broker) -> None:
    """A sink slower per message past 40: sizes start at 5, climb, stay within 5..100; all acked."""
    queue = broker.queue_name("adaptive")
    await broker.declare(queue)
    for n in range(1500):
        await broker.publish(queue, {"n": n})
    sizes: list[int] = []
    seen: list[int] = []

    class Adaptive(BulkConsumer):
        queues = [queue]
        bulk_size = 100
        prefetch = 200
        adaptive_bulk_size = True
        bulk_size_min = 5
        bulk_latency_target = 1.0
        flush_interval = 0.5

        async def handle(self, messages: list[Message[Any]]) -> None:
            sizes.append(len(messages))
            seen.extend(m.body["n"] for m in messages)
            # 20 ms a call, 0.1 ms a message, and 1 ms more per message past 40.
            await asyncio.sleep(0.02 + 0.0001 * len(messages) + 0.001 * max(0, len(messages) - 40))

    container, _ = recorded()
    started = time.monotonic()
    async with Orchestrator([Adaptive], container) as orchestrator:
        await wait_until(lambda: len(seen) == 1500, timeout=60)
        engine = orchestrator.runners[0].engine
        await wait_until(lambda: engine.idle, timeout=10)
        target = engine.bulk_size_target
    assert time.monotonic() - started < 60
    assert list(range(1500)) == sorted(seen)
    assert 5 == sizes[0]
    assert all(5 <= size <= 100 for size in sizes)
    assert max(sizes) > 40  # it climbed past where the sink slows down...
    assert 5 <= target <= 100
    assert 0 == await broker.ready_count(queue)
    assert 0 == await broker.ready_count(f"{queue}.dlq")

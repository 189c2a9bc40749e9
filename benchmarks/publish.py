"""Confirmed publishing: ``publish_many`` against a loop of single ``publish`` calls.

    python benchmarks/publish.py [--messages 100000]

Both publish 200-byte JSON messages to a fresh durable queue with publisher
confirms, on the same event loop; the loop waits for each confirm before the
next publish, as naive code does. Prints messages per second and the ratio.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from framework.amqp.publisher import Publisher
from framework.runtime.process import loop_factory

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")


def body(number: int) -> dict[str, object]:
    return {"id": number, "name": f"item {number}", "price": 9.99, "pad": "x" * 140}


async def timed(name: str, count: int, publish: object) -> float:
    connection = await aio_pika.connect_robust(AMQP_URL)
    queue = f"bulkworker.bench.publish.{uuid.uuid4().hex[:8]}"
    channel = await connection.channel()
    await channel.declare_queue(queue, durable=True)
    publisher = Publisher(connection)
    await publisher.open()
    started = time.perf_counter()
    await publish(publisher, queue, count)  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    arrived = await arrived_count(channel, queue, count)
    assert arrived == count, f"{arrived} of {count} messages arrived"
    await channel.queue_delete(queue)
    await publisher.close()
    await connection.close()
    print(f"{name:<14} {count / elapsed:>9,.0f} msg/s ({elapsed:.2f}s)")
    return count / elapsed


async def arrived_count(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> int:
    """The queue's count, once it has caught up with the confirms (it lags a little)."""
    # A fresh plain channel: aio-pika's robust channel answers passive declares stale.
    underlay = await channel.get_underlay_channel()
    probe = await underlay.connection.channel()
    arrived = 0
    for _ in range(100):
        declared = await probe.queue_declare(queue, passive=True)
        arrived = declared.message_count or 0
        if arrived >= count:
            break
        await asyncio.sleep(0.1)
    await probe.close()
    return arrived


async def one_by_one(publisher: Publisher, queue: str, count: int) -> None:
    for number in range(count):
        await publisher.publish(body(number), routing_key=queue)


async def many(publisher: Publisher, queue: str, count: int) -> None:
    await publisher.publish_many((body(n) for n in range(count)), routing_key=queue)


async def main(count: int) -> None:
    print(f"{count:,} confirmed messages of about 200 bytes")
    single = await timed("publish loop", count, one_by_one)
    batched = await timed("publish_many", count, many)
    print(f"ratio publish_many / publish loop: {batched / single:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="confirmed publishing throughput")
    parser.add_argument("--messages", type=int, default=100_000)
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(arguments.messages))

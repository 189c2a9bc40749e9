"""The adaptive bulk size against fixed sizes, with a sink whose cost grows with the bulk.

    python benchmarks/adaptive.py [--messages 20000] [--rounds 2] [--shape superlinear|cliff]

Every contender drains the same N 200-byte JSON messages from a fresh durable
queue into the same simulated sink, an asyncio sleep as long as a network
call to a store would take:

- ``superlinear``: 20 ms a call + 0.05 ms a message + 0.002 ms times the
  bulk size squared (a store whose big requests get slower per item: memory,
  locks, a proxy's buffering). The time per message is lowest near 100.
- ``cliff``: 20 ms a call + 0.05 ms a message, and 300 ms more past 200
  messages (a request that outgrows a buffer and spills).

Contenders: plain aio-pika with bulks of 500 (a consume callback fills a
buffer, one task hands full bulks to the sink and acks them with one
``ack(multiple=True)``), bulkworker with ``bulk_size = 500`` (the guess too
big), ``bulk_size = 10`` (the guess too small), the best fixed size for the
shape (known only because the sink is simulated), and
``adaptive_bulk_size = True`` between 10 and 500. Rounds alternate between
them and the best round of each counts.
"""

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throughput import AMQP_URL, delete_queue, fill_queue
from framework import BulkConsumer, Container, Message, Orchestrator
from framework.runtime.process import loop_factory

SMALLEST = 10
LARGEST = 500


def superlinear(size: int) -> float:
    return 0.020 + 0.00005 * size + 0.000002 * size * size


def cliff(size: int) -> float:
    return 0.020 + 0.00005 * size + (0.3 if size > 200 else 0.0)


SHAPES: dict[str, tuple[Callable[[int], float], int]] = {
    # The cost of one call of `size` messages, and the fixed size that costs least per message.
    "superlinear": (superlinear, 100),
    "cliff": (cliff, 200),
}


class Sink:
    """The simulated store: one call at a time, sleeping as long as the shape says."""

    def __init__(self, cost: Callable[[int], float], count: int) -> None:
        self.cost = cost
        self.count = count
        self.stored = 0
        self.sizes: list[int] = []
        self.done = asyncio.Event()

    async def store(self, bodies: list[Any]) -> None:
        self.sizes.append(len(bodies))
        await asyncio.sleep(self.cost(len(bodies)))
        self.stored += len(bodies)
        if self.stored >= self.count:
            self.done.set()


async def run_framework(queue: str, sink: Sink, settings: dict[str, Any]) -> float:
    async def handle(self: BulkConsumer, messages: list[Message[Any]]) -> None:
        await sink.store([message.body for message in messages])

    attributes = {"queues": [queue], "flush_interval": 1.0, "handle": handle, **settings}
    bench = type("Bench", (BulkConsumer,), attributes)
    container = Container()
    container.config.amqp_url.from_value(AMQP_URL)
    container.config.log_level.from_value("WARNING")
    async with Orchestrator([bench], container):
        started = time.perf_counter()
        await sink.done.wait()
        return time.perf_counter() - started


async def run_baseline(queue: str, sink: Sink, bulk_size: int) -> float:
    """aio-pika the ordinary way: a callback fills bulks, one task stores and acks them."""
    bulks: asyncio.Queue[list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]]]
    bulks = asyncio.Queue()
    buffer: list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]] = []
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2 * bulk_size)
    source = await channel.declare_queue(queue, durable=True)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        buffer.append((message, json.loads(message.body)))
        if len(buffer) >= bulk_size:
            bulks.put_nowait(buffer[:])
            buffer.clear()

    async def store_bulks() -> None:
        while True:
            bulk = await bulks.get()
            await sink.store([body for _, body in bulk])
            await bulk[-1][0].ack(multiple=True)

    started = time.perf_counter()
    worker = asyncio.create_task(store_bulks())
    tag = await source.consume(on_message)
    await sink.done.wait()
    elapsed = time.perf_counter() - started
    worker.cancel()
    await source.cancel(tag)
    await connection.close()
    return elapsed


def contenders(best: int) -> dict[str, Callable[[str, Sink], Any]]:
    def framework(settings: dict[str, Any]) -> Callable[[str, Sink], Any]:
        return lambda queue, sink: run_framework(queue, sink, settings)

    return {
        f"aio-pika, bulk {LARGEST}": lambda queue, sink: run_baseline(queue, sink, LARGEST),
        f"fixed {LARGEST}": framework({"bulk_size": LARGEST}),
        f"fixed {SMALLEST}": framework({"bulk_size": SMALLEST}),
        f"fixed {best} (best)": framework({"bulk_size": best}),
        "adaptive": framework(
            {"bulk_size": LARGEST, "bulk_size_min": SMALLEST, "adaptive_bulk_size": True}
        ),
    }


async def measure(count: int, rounds: int, shape: str) -> dict[str, tuple[float, list[int]]]:
    cost, best_size = SHAPES[shape]
    runs = contenders(best_size)
    best: dict[str, tuple[float, list[int]]] = {name: (0.0, []) for name in runs}
    for round_number in range(rounds):
        for name, run in runs.items():
            queue = await fill_queue(count)
            sink = Sink(cost, count)
            try:
                elapsed = await run(queue, sink)
            finally:
                await delete_queue(queue)
            rate = count / elapsed
            print(f"round {round_number + 1}: {name:<20} {rate:>7,.0f} msg/s ({elapsed:.2f}s)")
            if rate > best[name][0]:
                best[name] = (rate, sink.sizes)
    return best


def typical_sizes(sizes: list[int]) -> str:
    """The middle half of the sizes after the first quarter of the bulks (the climb)."""
    settled = sorted(sizes[len(sizes) // 4 :]) or [0]
    quarter = len(settled) // 4
    return f"{settled[quarter]}..{settled[-quarter - 1]} (median {settled[len(settled) // 2]})"


async def main(arguments: argparse.Namespace) -> None:
    print(
        f"{arguments.messages:,} messages of 200 bytes, sink shape: {arguments.shape}, "
        f"Python {sys.version.split()[0]}"
    )
    best = await measure(arguments.messages, arguments.rounds, arguments.shape)
    baseline = best[f"aio-pika, bulk {LARGEST}"][0]
    adaptive = best["adaptive"][0]
    for name, (rate, sizes) in best.items():
        print(
            f"best: {name:<20} {rate:>7,.0f} msg/s  adaptive / this: {adaptive / rate:.2f}  "
            f"this / aio-pika: {rate / baseline:.2f}  bulk sizes {typical_sizes(sizes)}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="adaptive vs fixed bulk sizes")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="superlinear")
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(arguments))

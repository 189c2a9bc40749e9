"""Concurrent bulks against a slow sink: max_concurrent_bulks 4 vs 1, in one run.

    python benchmarks/concurrency.py [--messages 2000] [--sink-seconds 0.2]

Each bulk of 100 takes ``--sink-seconds`` to "store" (an asyncio sleep, as a
network round trip to a database would). The same messages are consumed with
``max_concurrent_bulks = 1`` and ``= 4``; the ratio of their throughputs shows
what overlapping the slow writes buys.
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throughput import AMQP_URL, delete_queue, fill_queue
from framework import BulkConsumer, Container, Message, Orchestrator

BULK_SIZE = 100


async def consume(queue: str, count: int, concurrent: int, sink_seconds: float) -> float:
    done = asyncio.Event()
    handled = 0

    class SlowSink(BulkConsumer):
        queues = [queue]
        bulk_size = BULK_SIZE
        max_concurrent_bulks = concurrent
        flush_interval = 1.0

        async def handle(self, messages: list[Message[Any]]) -> None:
            nonlocal handled
            await asyncio.sleep(sink_seconds)
            handled += len(messages)
            if handled >= count:
                done.set()

    container = Container()
    container.config.amqp_url.from_value(AMQP_URL)
    container.config.log_level.from_value("WARNING")
    async with Orchestrator([SlowSink], container):
        started = time.perf_counter()
        await done.wait()
        return count / (time.perf_counter() - started)


async def main(arguments: argparse.Namespace) -> None:
    rates = {}
    for concurrent in (1, 4):
        queue = await fill_queue(arguments.messages)
        try:
            rates[concurrent] = await consume(
                queue, arguments.messages, concurrent, arguments.sink_seconds
            )
        finally:
            await delete_queue(queue)
        print(f"max_concurrent_bulks={concurrent}: {rates[concurrent]:,.0f} msg/s")
    print(f"ratio 4 / 1: {rates[4] / rates[1]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="max_concurrent_bulks 4 vs 1, slow sink")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sink-seconds", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))

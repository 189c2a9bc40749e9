"""Reading a stream: a stream BulkConsumer against a plain aio-pika stream consumer, in one run.

    python benchmarks/stream_read.py [--messages 100000] [--rounds 2]

One stream queue is filled once with N 200-byte JSON messages; a stream keeps
them, so every contender reads the same messages from ``first``. Both read
with bulks of 500 and prefetch 1000 on the same event loop and do the same
work: decode each body, one unit of "store" work per bulk. The baseline is
aio-pika the ordinary way for a stream: ``basic.qos``, ``queue.consume`` with
``x-stream-offset: first``, a buffer, one ``ack(multiple=True)`` per bulk.
Rounds alternate and the best round of each counts.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import throughput
from benchmarks.throughput import AMQP_URL, BULK_SIZE, PREFETCH, delete_queue, fill_queue, store
from framework import Actions
from framework.runtime.process import loop_factory

STREAM = {"x-queue-type": "stream"}


async def run_framework(queue: str, count: int) -> float:
    return await throughput.run_framework(
        queue, count, queue_arguments=STREAM, stream_offset="first", on_exception=Actions.REJECT
    )


async def run_baseline(queue: str, count: int) -> float:
    done = asyncio.Event()
    handled = 0
    buffer: list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]] = []
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    source = await channel.declare_queue(queue, durable=True, arguments=STREAM)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal handled
        buffer.append((message, json.loads(message.body)))
        if len(buffer) >= BULK_SIZE:
            bulk = buffer[:]
            buffer.clear()
            store([decoded for _, decoded in bulk])
            await bulk[-1][0].ack(multiple=True)
            handled += len(bulk)
            if handled >= count:
                done.set()

    started = time.perf_counter()
    tag = await source.consume(on_message, arguments={"x-stream-offset": "first"})
    await done.wait()
    elapsed = time.perf_counter() - started
    await source.cancel(tag)
    await connection.close()
    return elapsed


async def main(arguments: argparse.Namespace) -> None:
    count, rounds = arguments.messages, arguments.rounds
    contenders = [("aio-pika", run_baseline), ("bulkworker", run_framework)]
    best = {name: float("inf") for name, _ in contenders}
    queue = await fill_queue(count, STREAM)
    try:
        for round_number in range(rounds):
            for name, contender in contenders:
                elapsed = await contender(queue, count)
                rate = count / elapsed
                print(f"round {round_number + 1}: {name:<10} {rate:>9,.0f} msg/s ({elapsed:.2f}s)")
                best[name] = min(best[name], elapsed)
    finally:
        await delete_queue(queue)
    framework, baseline = count / best["bulkworker"], count / best["aio-pika"]
    print(
        f"stream read, best of {rounds}: bulkworker {framework:,.0f} msg/s, "
        f"aio-pika {baseline:,.0f} msg/s, ratio {framework / baseline:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bulkworker vs aio-pika reading a stream")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(parser.parse_args()))

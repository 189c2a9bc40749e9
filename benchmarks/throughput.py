"""Throughput of a BulkConsumer against a plain aio-pika consumer, in one run.

    python benchmarks/throughput.py [--messages 100000] [--rounds 2] [--rss-messages 200000]
                                    [--metrics] [--workers N]

Both consume the same N 200-byte JSON messages from a fresh durable queue on the
same event loop, with bulks of 500 and prefetch 1000, doing the same work: decode
each body, then one unit of "store" work per bulk. The baseline is aio-pika the
ordinary way: ``queue.consume`` callback, a buffer, one ``ack(multiple=True)``
per bulk. Rounds alternate between the two and the best round of each counts.
Then peak RSS is measured while the framework drains a queue holding
``--rss-messages`` messages. ``--metrics`` adds a contender with the Prometheus
metrics off, to tell what they cost. ``--workers N`` also drains the queue with
``bulkworker run --workers 1`` and ``--workers N`` in processes of their own.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import aiormq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.processes import drain_with_workers
from framework import BulkConsumer, Container, Message, Orchestrator
from framework.core.decoding import FAST_LOADS
from framework.runtime.process import loop_factory

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
BULK_SIZE = 500
PREFETCH = 2 * BULK_SIZE
PUBLISH_WINDOW = 2000


def body(number: int) -> bytes:
    """A JSON object of exactly 200 bytes."""
    head = json.dumps({"id": number, "name": f"item {number}", "price": 9.99, "pad": ""})
    return head.replace('"pad": ""', '"pad": "' + "x" * (200 - len(head)) + '"').encode()


async def fill_queue(count: int, arguments: dict[str, Any] | None = None) -> str:
    """A new queue (declared with ``arguments``: a stream, say) holding ``count`` messages."""
    queue = f"bulkworker.bench.{uuid.uuid4().hex[:8]}"
    connection = await aiormq.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.queue_declare(queue, durable=True, arguments=arguments)
    properties = aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=2)
    for start in range(0, count, PUBLISH_WINDOW):
        numbers = range(start, min(start + PUBLISH_WINDOW, count))
        await asyncio.gather(
            *(
                channel.basic_publish(body(n), routing_key=queue, properties=properties)
                for n in numbers
            )
        )
    await connection.close()
    return queue


async def delete_queue(queue: str) -> None:
    """The queue, and the dead-letter queue the framework declared beside it."""
    connection = await aiormq.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.queue_delete(queue)
    await channel.queue_delete(f"{queue}.dlq")
    await connection.close()


def store(bulk: list[Any]) -> int:
    """The per-bulk work both contenders do: touch every decoded body once."""
    return sum(item["id"] for item in bulk)


async def run_framework_without_metrics(queue: str, count: int) -> float:
    return await run_framework(queue, count, metrics=False)


async def run_framework(queue: str, count: int, metrics: bool = True, **settings: Any) -> float:
    """Seconds for a BulkConsumer to handle ``count`` messages; ``settings`` are added to it."""
    done = asyncio.Event()
    handled = 0

    class Bench(BulkConsumer):
        queues = [queue]
        bulk_size = BULK_SIZE
        prefetch = PREFETCH
        flush_interval = 1.0

        async def handle(self, messages: list[Message[Any]]) -> None:
            nonlocal handled
            store([message.body for message in messages])
            handled += len(messages)
            if handled >= count:
                done.set()

    container = Container()
    container.config.amqp_url.from_value(AMQP_URL)
    container.config.log_level.from_value("WARNING")
    container.config.metrics.from_value(metrics)
    consumer = type("Bench", (Bench,), settings) if settings else Bench
    async with Orchestrator([consumer], container):
        started = time.perf_counter()
        await done.wait()
        return time.perf_counter() - started


async def run_baseline(queue: str, count: int) -> float:
    done = asyncio.Event()
    handled = 0
    buffer: list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]] = []
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=PREFETCH)
    source = await channel.declare_queue(queue, durable=True)

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
    tag = await source.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await source.cancel(tag)
    await connection.close()
    return elapsed


async def measure(count: int, rounds: int, metrics_off: bool = False) -> dict[str, float]:
    contenders: list[tuple[str, Any]] = [("aio-pika", run_baseline), ("bulkworker", run_framework)]
    if metrics_off:
        contenders.append(("no metrics", run_framework_without_metrics))
    best = {name: float("inf") for name, _ in contenders}
    for round_number in range(rounds):
        for name, contender in contenders:
            queue = await fill_queue(count)
            try:
                elapsed = await contender(queue, count)
            finally:
                await delete_queue(queue)
            rate = count / elapsed
            print(f"round {round_number + 1}: {name:<10} {rate:>9,.0f} msg/s ({elapsed:.2f}s)")
            best[name] = min(best[name], elapsed)
    return {name: count / elapsed for name, elapsed in best.items()}


async def measure_workers(count: int, rounds: int, workers: int, baseline: float) -> None:
    """`bulkworker run --workers 1` and `--workers N`, each the best of ``rounds``."""
    best = {1: 0.0, workers: 0.0}
    for round_number in range(rounds):
        for processes in best:
            queue = await fill_queue(count)
            try:
                rate = await drain_with_workers(queue, count, processes)
            finally:
                await delete_queue(queue)
            print(f"round {round_number + 1}: --workers {processes}  {rate:>9,.0f} msg/s")
            best[processes] = max(best[processes], rate)
    one, many = best[1], best[workers]
    print(f"best: --workers 1 {one:,.0f} msg/s, --workers {workers} {many:,.0f} msg/s")
    print(f"ratio --workers {workers} / --workers 1: {many / one:.2f}")
    print(f"ratio --workers {workers} / aio-pika (one process): {many / baseline:.2f}")


async def measure_rss(count: int) -> float:
    """Peak RSS of a fresh process that drains ``count`` waiting messages with the framework."""
    queue = await fill_queue(count)
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--drain",
            queue,
            "--messages",
            str(count),
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await child.communicate()
    finally:
        await delete_queue(queue)
    if child.returncode != 0:
        raise RuntimeError(f"the draining process failed with exit code {child.returncode}")
    return float(output.decode().strip().splitlines()[-1])


async def drain(queue: str, count: int) -> None:
    await run_framework(queue, count)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


async def main(arguments: argparse.Namespace) -> None:
    if arguments.drain:
        await drain(arguments.drain, arguments.messages)
        return
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    parser = "orjson" if FAST_LOADS is not None else "json"
    print(
        f"{arguments.messages:,} messages of {len(body(0))} bytes, bulk {BULK_SIZE}, "
        f"prefetch {PREFETCH}, event loop: {loop}, framework JSON: {parser}, "
        f"Python {sys.version.split()[0]}"
    )
    rates = await measure(arguments.messages, arguments.rounds, arguments.metrics)
    ours, theirs = rates["bulkworker"], rates["aio-pika"]
    print(f"best: bulkworker {ours:,.0f} msg/s, aio-pika {theirs:,.0f} msg/s")
    print(f"ratio bulkworker / aio-pika: {ours / theirs:.2f}")
    if arguments.metrics:
        off = rates["no metrics"]
        print(f"metrics off {off:,.0f} msg/s: metrics cost {100 * (1 - ours / off):.1f}%")
    if arguments.workers > 1:
        await measure_workers(arguments.messages, arguments.rounds, arguments.workers, theirs)
    if arguments.rss_messages:
        peak = await measure_rss(arguments.rss_messages)
        waiting = arguments.rss_messages
        print(f"peak RSS of a worker draining {waiting:,} waiting messages: {peak:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bulkworker vs plain aio-pika throughput")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rss-messages", type=int, default=200_000)
    parser.add_argument(
        "--loop",
        choices=["auto", "asyncio"],
        default="auto",
        help="auto: uvloop when installed, as `bulkworker run` does",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="also run with the metrics off, to compare"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="also drain with `bulkworker run --workers 1` and `--workers N` processes",
    )
    parser.add_argument("--drain", metavar="QUEUE", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    factory = loop_factory() if arguments.loop == "auto" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(arguments))

"""Soak: a million messages through connection cuts and poison messages; nothing may be lost.

    python benchmarks/soak.py [--messages 1000000] [--cut-every 5] [--poison-every 10000]

The worker connects through a TCP proxy that drops every connection every few
seconds, while a publisher keeps the queue fed. One message in ``--poison-every``
makes ``handle`` raise; with ``isolate_failures`` only it fails, and after its
retries it must end in the dead-letter queue. At the end the run prints what was
processed, duplicated, dead-lettered and lost (must be 0), the peak RSS, and how
many asyncio tasks are alive compared with before the worker started.
"""

import argparse
import array
import asyncio
import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiormq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from framework import BulkConsumer, Container, Message, Orchestrator
from framework.runtime.process import loop_factory
from tests.proxy import TcpProxy

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PUBLISH_WINDOW = 2000
MAX_BACKLOG = 100_000


class Tally:
    """What happened to every message id."""

    def __init__(self, count: int) -> None:
        self.handled = array.array("H", bytes(2 * count))
        self.dead: set[int] = set()
        self.successes = 0

    def record(self, ids: list[int]) -> None:
        for number in ids:
            self.handled[number] += 1
        self.successes += len(ids)


async def publish(queue: str, count: int, poison_every: int, backlog: Any) -> None:
    connection = await aiormq.connect(AMQP_URL)
    channel = await connection.channel()
    properties = aiormq.spec.Basic.Properties(content_type="application/json", delivery_mode=2)
    for start in range(0, count, PUBLISH_WINDOW):
        while await backlog() > MAX_BACKLOG:
            await asyncio.sleep(0.2)
        numbers = range(start, min(start + PUBLISH_WINDOW, count))
        await asyncio.gather(
            *(
                channel.basic_publish(
                    json.dumps({"id": n, "poison": n % poison_every == poison_every - 1}).encode(),
                    routing_key=queue,
                    properties=properties,
                )
                for n in numbers
            )
        )
    await connection.close()


async def soak(arguments: argparse.Namespace) -> None:
    count = arguments.messages
    queue = f"bulkworker.soak.{uuid.uuid4().hex[:8]}"
    tally = Tally(count)
    admin = await aiormq.connect(AMQP_URL)
    inspect = await admin.channel()
    await inspect.queue_declare(queue, durable=True)

    async def ready(name: str = queue) -> int:
        return int((await inspect.queue_declare(name, passive=True)).message_count or 0)

    class Soaked(BulkConsumer):
        queues = [queue]
        bulk_size = 500
        flush_interval = 0.5
        isolate_failures = True
        max_retries = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            if any(message.body["poison"] for message in messages):
                raise ValueError("poison")
            tally.record([message.body["id"] for message in messages])

    proxy = TcpProxy()
    await proxy.start()
    container = Container()
    container.config.amqp_url.from_value(proxy.url)
    container.config.log_level.from_value("ERROR")
    tasks_before = len(asyncio.all_tasks())
    started = time.monotonic()
    feeding = asyncio.create_task(publish(queue, count, arguments.poison_every, ready))
    cuts = 0
    async with Orchestrator([Soaked], container) as orchestrator:
        runner = orchestrator.runners[0]
        last_cut = last_report = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(progress(runner, tally), file=sys.stderr, flush=True)
            if time.monotonic() - last_cut >= arguments.cut_every:
                proxy.cut()
                cuts += 1
                last_cut = time.monotonic()
            dead = await ready(f"{queue}.dlq")
            settled = sum(1 for n in tally.handled if n) + dead
            if feeding.done() and settled >= count and await ready() == 0:
                break
            if time.monotonic() - started > arguments.deadline:
                print("deadline reached before everything was settled")
                break
        elapsed = time.monotonic() - started
    await feeding
    dead_ids = await drain_ids(inspect, f"{queue}.dlq")
    await inspect.queue_delete(queue)
    await inspect.queue_delete(f"{queue}.dlq")
    await admin.close()
    await proxy.close()
    await asyncio.sleep(0.5)
    report(tally, dead_ids, count, arguments.poison_every, cuts, elapsed, tasks_before)


def progress(runner: Any, tally: Tally) -> str:
    engine = runner.engine
    worker = runner.worker
    state = "running" if worker is not None and not worker.done() else f"stopped: {worker!r}"
    return (
        f"handled {tally.successes:,}; buffered {engine.buffered}; "
        f"unsettled {engine.settler.ledger.unsettled_count()}; moves {engine.moves_pending}; "
        f"consuming {runner.subscription.consuming}; worker {state}"
    )


async def drain_ids(channel: aiormq.abc.AbstractChannel, queue: str) -> list[int]:
    ids = []
    while True:
        message = await channel.basic_get(queue, no_ack=True)
        if not message.body and message.delivery_tag is None:
            return ids
        ids.append(json.loads(message.body)["id"])


def report(
    tally: Tally,
    dead_ids: list[int],
    count: int,
    poison_every: int,
    cuts: int,
    elapsed: float,
    tasks_before: int,
) -> None:
    processed = sum(1 for n in tally.handled if n)
    duplicates = tally.successes - processed
    dead = set(dead_ids)
    expected_dead = {n for n in range(count) if n % poison_every == poison_every - 1}
    lost = [n for n in range(count) if not tally.handled[n] and n not in dead]
    print(
        f"messages:        {count:,} in {elapsed:.0f}s ({count / elapsed:,.0f} msg/s), {cuts} cuts"
    )
    print(f"processed:       {processed:,}")
    print(f"duplicates:      {duplicates:,}")
    exact = dead == expected_dead
    print(f"dead-lettered:   {len(dead):,} (expected {len(expected_dead):,}; exact: {exact})")
    print(f"lost:            {len(lost)}")
    print(f"peak RSS:        {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(
        f"asyncio tasks:   {len(asyncio.all_tasks())} alive at the end, {tasks_before} before start"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bulkworker soak: cuts and poison, nothing lost")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--cut-every", type=float, default=5.0)
    parser.add_argument("--poison-every", type=int, default=10_000)
    parser.add_argument("--deadline", type=float, default=1800.0)
    arguments = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(soak(arguments))

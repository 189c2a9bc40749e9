"""Every metric on /metrics, from known traffic on the real broker, read as deltas."""

import asyncio
import json
import time
from typing import Any

import aiohttp
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from framework import Actions, BulkConsumer, Message, Orchestrator
from tests.broker import Broker, wait_until
from tests.conftest import recorded
from tests.test_probes import port_of

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert 200 == response.status
        return samples_of(await response.text())


def samples_of(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def consumer_for(queue: str) -> type[BulkConsumer]:
    class Metered(BulkConsumer):
        queues = [queue]
        bulk_size = 300
        prefetch = 600
        # Long enough that a bulk fills by size even when deliveries crawl on a busy
        # machine: only the last 100 messages wait for the interval.
        flush_interval = 3.0
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            for message in messages:
                if message.body.get("bad"):
                    message.reject()
            if any(message.body.get("boom") for message in messages):
                raise KeyError("boom")

    return Metered


async def test_known_traffic_shows_in_every_metric(broker: Broker) -> None:
    """1,000 messages: 3 bulks by size, 1 by interval, 2 dead letters, every counter adds up."""
    queue = broker.queue_name("metrics")
    await broker.declare(queue)
    # All waiting before the consumer starts: bulks fill by size however slow the machine.
    for n in range(1000):
        await broker.publish(queue, {"n": n, "bad": n in (10, 20)})
    container, _ = recorded(http_port=0)
    orchestrator = Orchestrator([consumer_for(queue)], container)
    before = samples_of(generate_latest().decode())
    async with orchestrator:
        url = f"http://127.0.0.1:{port_of(orchestrator)}/metrics"
        runner = orchestrator.runners[0]

        async def all_settled() -> bool:
            after = await scrape(url)
            return 1000 == sum(
                delta(
                    before,
                    after,
                    "bulkworker_messages_settled_total",
                    consumer="Metered",
                    queue=queue,
                    outcome=outcome,
                )
                for outcome in ("ack", "dead_letter")
            )

        await wait_until(all_settled, timeout=30)
        after = await scrape(url)
        assert runner.engine.buffered == 0
    labels = {"consumer": "Metered"}
    assert 1000 == delta(
        before, after, "bulkworker_messages_received_total", consumer="Metered", queue=queue
    )
    assert 998 == delta(
        before, after, "bulkworker_messages_settled_total", **labels, queue=queue, outcome="ack"
    )
    assert 2 == delta(
        before,
        after,
        "bulkworker_messages_settled_total",
        **labels,
        queue=queue,
        outcome="dead_letter",
    )
    assert 3 == delta(before, after, "bulkworker_bulks_total", **labels, reason="size")
    assert 1 == delta(before, after, "bulkworker_bulks_total", **labels, reason="interval")
    assert 4 == delta(before, after, "bulkworker_bulk_size_count", **labels)
    assert 1000 == delta(before, after, "bulkworker_bulk_size_sum", **labels)
    assert 4 == delta(before, after, "bulkworker_bulk_wait_seconds_count", **labels)
    assert 4 == delta(before, after, "bulkworker_handle_seconds_count", **labels, outcome="success")
    assert 300 == value(after, "bulkworker_bulk_size_setting", **labels)
    assert 300 == value(after, "bulkworker_bulk_size_target", **labels)
    assert 4 == delta(before, after, "bulkworker_bulk_bytes_count", **labels)
    sent_bytes = sum(len(json.dumps({"n": n, "bad": n in (10, 20)})) for n in range(1000))
    assert sent_bytes == delta(before, after, "bulkworker_bulk_bytes_sum", **labels)
    assert 1 == value(after, "bulkworker_consumers_active", **labels, queue=queue)
    assert 0 == value(after, "bulkworker_buffered_messages", **labels)
    assert 0 == value(after, "bulkworker_oldest_buffered_seconds", **labels)
    assert 0 == value(after, "bulkworker_moves_pending", **labels)
    assert 1 == value(after, "bulkworker_connection_up", connection="default", purpose="consuming")
    assert 1 == value(after, "bulkworker_connection_up", connection="default", purpose="publishing")
    assert value(after, "bulkworker_event_loop_lag_seconds_count") > 0


async def test_exceptions_are_counted_by_class_and_buffered_messages_show(
    broker: Broker,
) -> None:
    """A raising handle counts its exception class; a waiting partial bulk shows as buffered."""
    queue = broker.queue_name("metrics-errors")
    await broker.declare(queue)
    container, _ = recorded(http_port=0)

    class Slow(BulkConsumer):
        queues = [queue]
        bulk_size = 10
        flush_interval = 600
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise KeyError("boom")

    orchestrator = Orchestrator([Slow], container)
    async with orchestrator:
        url = f"http://127.0.0.1:{port_of(orchestrator)}/metrics"
        before = await scrape(url)
        for n in range(13):
            await broker.publish(queue, {"n": n})
        await wait_until(lambda: orchestrator.runners[0].engine.buffered == 3)
        await asyncio.sleep(0.2)
        after = await scrape(url)
    assert 1 == delta(
        before, after, "bulkworker_handler_exceptions_total", consumer="Slow", exception="KeyError"
    )
    assert 1 == delta(
        before, after, "bulkworker_handle_seconds_count", consumer="Slow", outcome="error"
    )
    assert 3 == value(after, "bulkworker_buffered_messages", consumer="Slow")
    assert value(after, "bulkworker_oldest_buffered_seconds", consumer="Slow") > 0


async def test_consumers_active_follows_the_broker(broker: Broker) -> None:
    """Deleting the queue drops the consumer: the gauge goes to 0, and back once it returns."""
    queue = broker.queue_name("metrics-active")
    await broker.declare(queue)
    container, _ = recorded(http_port=0, reconnect_max_delay=1.0)

    class Watched(BulkConsumer):
        queues = [queue]

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    orchestrator = Orchestrator([Watched], container)
    async with orchestrator:
        url = f"http://127.0.0.1:{port_of(orchestrator)}/metrics"

        async def active() -> float:
            return value(
                await scrape(url), "bulkworker_consumers_active", consumer="Watched", queue=queue
            )

        assert 1 == await active()
        channel = await broker.connection.channel()
        await channel.queue_delete(queue)
        started = time.monotonic()
        await wait_until(lambda: _is(active, 0.0), timeout=15)
        assert time.monotonic() - started < 15
        await wait_until(lambda: _is(active, 1.0), timeout=30)


async def _is(probe: Any, expected: float) -> bool:
    return expected == await probe()

"""A dropped connection: no stale acks, no stale copies, consuming resumes by itself."""

import asyncio
from typing import Any

from dependency_injector import providers

from framework import BulkConsumer, Message, Orchestrator
from framework.testing import RecordingLog
from tests.broker import Broker, wait_until
from tests.conftest import make_container
from tests.proxy import TcpProxy


def recorded_container(proxy: TcpProxy) -> tuple[Any, RecordingLog]:
    container = make_container(proxy.url + "?reconnect_interval=0.2")
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    return container, log


async def test_cut_while_handle_runs_skips_the_stale_settlement(
    broker: Broker, proxy: TcpProxy
) -> None:
    """The running handle completes; its acks are not sent on the new channel; all redelivered."""
    queue = broker.queue_name("cut-handle")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    container, log = recorded_container(proxy)
    gate = asyncio.Event()
    handled: list[tuple[int, bool]] = []

    class Held(BulkConsumer):
        queues = [queue]
        bulk_size = 5

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend((m.body["id"], m.redelivered) for m in messages)
            await gate.wait()

    async with Orchestrator([Held], container):
        await wait_until(lambda: len(handled) == 5)
        proxy.cut()
        await wait_until(lambda: proxy.connections >= 2)
        await wait_until(lambda: "channel reopened: consuming again" in log.messages("warning"))
        gate.set()
        await wait_until(lambda: len(handled) == 10)
        assert 1 == await broker.consumer_count(queue)
    assert [(n, False) for n in range(5)] == handled[:5]
    assert [(n, True) for n in range(5)] == handled[5:]
    assert "channel closed before settlement: messages will be redelivered" in log.messages(
        "warning"
    )
    assert [] == log.messages("error")
    assert 0 == await broker.ready_count(queue)


async def test_cut_with_a_bulk_buffered_drops_the_stale_copies(
    broker: Broker, proxy: TcpProxy
) -> None:
    """Buffered copies from the dead channel never reach handle next to their redeliveries."""
    queue = broker.queue_name("cut-buffer")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    container, log = recorded_container(proxy)
    bulks: list[list[tuple[int, bool]]] = []

    class Patient(BulkConsumer):
        queues = [queue]
        bulk_size = 100
        flush_interval = 600

        async def handle(self, messages: list[Message[Any]]) -> None:
            bulks.append([(m.body["id"], m.redelivered) for m in messages])

    orchestrator = Orchestrator([Patient], container)
    async with orchestrator:
        engine = orchestrator.runners[0].engine
        await wait_until(lambda: engine.buffered == 5)
        proxy.cut()
        await wait_until(lambda: "channel reopened: consuming again" in log.messages("warning"))
        await wait_until(lambda: engine.buffered == 5)
        assert 1 == await broker.consumer_count(queue)
    assert [[(n, True) for n in range(5)]] == bulks
    reopened = [extra for level, msg, extra in log.records if msg.startswith("channel reopened")]
    assert 5 == reopened[0]["dropped_from_buffer"]
    assert 0 == await broker.ready_count(queue)

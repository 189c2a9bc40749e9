"""Bulks by key: each key fills its own bulk and keeps its own timer; pressure never stalls."""

import asyncio
from typing import Any

import pytest

from framework import BulkConsumer, ConsumerDefinitionError, Message, Orchestrator
from framework.core.engine import EngineConfig, build_engine
from framework.core.watch import Bulk, FlushReason, Watcher
from framework.testing import ConsumerHarness, make_message
from tests.broker import Broker, wait_until
from tests.conftest import recorded
from tests.test_engine import arrive, let_run, settings, started, stopped


class Bulks(Watcher):
    def __init__(self) -> None:
        self.taken: list[Bulk] = []

    def bulk_taken(self, bulk: Bulk) -> None:
        self.taken.append(bulk)


def engine_for(clock: Any, log: Any, publisher: Any, handled: list[Any], **overrides: Any):
    async def handle(messages: list[Message[Any]]) -> None:
        handled.append([m.body for m in messages])

    watcher = Bulks()
    engine = build_engine(
        settings(**{"group_by": "tenant", **overrides}),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher, watcher=watcher),
    )
    return engine, watcher


def tenant_message(tag: int, tenant: str, channel: Any) -> Message[Any]:
    return make_message(f"{tenant}{tag}", channel=channel, tag=tag, headers={"tenant": tenant})


async def test_each_key_fills_its_own_bulk(clock, channel, log, publisher) -> None:
    """A bulk of three a's goes as the third a comes; the b's keep waiting."""
    handled: list[Any] = []
    engine, _ = engine_for(clock, log, publisher, handled, bulk_size=3, prefetch=20)
    task = await started(engine)
    for tag, tenant in enumerate("abaab", start=1):
        await arrive(engine, tenant_message(tag, tenant, channel))
    await let_run()
    assert [["a1", "a3", "a4"]] == handled
    assert 2 == engine.buffered
    await stopped(engine, task)
    assert [["a1", "a3", "a4"], ["b2", "b5"]] == handled


async def test_each_key_counts_its_interval_from_its_own_first_message(
    clock, channel, log, publisher
) -> None:
    """a at 0 s and b at 3 s, interval 5 s: a goes at 5 s, b at 8 s."""
    handled: list[Any] = []
    engine, watcher = engine_for(clock, log, publisher, handled, bulk_size=10, prefetch=20)
    task = await started(engine)
    await arrive(engine, tenant_message(1, "a", channel))
    clock.advance(3.0)
    await arrive(engine, tenant_message(2, "b", channel))
    clock.advance(2.0)
    await let_run()
    assert [["a1"]] == handled
    clock.advance(3.0)
    await let_run()
    assert [["a1"], ["b2"]] == handled
    assert [FlushReason.INTERVAL, FlushReason.INTERVAL] == [b.reason for b in watcher.taken]
    await stopped(engine, task)


async def test_prefetch_reached_flushes_the_key_with_the_oldest_message(
    clock, channel, log, publisher
) -> None:
    """Four keys fill all four prefetch slots: the oldest key goes at once, as `pressure`."""
    handled: list[Any] = []
    engine, watcher = engine_for(clock, log, publisher, handled, bulk_size=10, prefetch=4)
    task = await started(engine)
    for tag, tenant in enumerate("abcd", start=1):
        await arrive(engine, tenant_message(tag, tenant, channel))
        clock.advance(0.1)
    await let_run()
    assert [["a1"]] == handled
    assert [FlushReason.PRESSURE] == [bulk.reason for bulk in watcher.taken]
    await stopped(engine, task)


async def test_acks_stay_exact_across_keys(clock, channel, log, publisher) -> None:
    """b's bulk (tags 2, 4) is acked while a's tags 1, 3 wait: no multiple ack covers them."""
    handled: list[Any] = []
    engine, _ = engine_for(clock, log, publisher, handled, bulk_size=2, prefetch=20)
    task = await started(engine)
    for tag, tenant in enumerate("abab", start=1):
        await arrive(engine, tenant_message(tag, tenant, channel))
    await let_run()
    assert [["a1", "a3"], ["b2", "b4"]] == handled
    assert ("ack", 1, False) == channel.calls[0]
    assert {1: "ack", 2: "ack", 3: "ack", 4: "ack"} == channel.settled_tags(4)
    await arrive(engine, tenant_message(5, "a", channel))
    await arrive(engine, tenant_message(6, "b", channel))
    await arrive(engine, tenant_message(7, "b", channel))
    await let_run()
    assert 5 not in channel.settled_tags(7)  # a's tag 5 waits; b's bulk (6, 7) did not cover it
    await stopped(engine, task)
    assert set(range(1, 8)) == set(channel.settled_tags(7))


async def test_a_key_function_that_raises_dead_letters_that_message_alone(
    clock, channel, log, publisher
) -> None:
    """group_by raising (or returning something unhashable): `ungroupable`, the rest go on."""
    handled: list[Any] = []

    def key(message: Message[Any]) -> Any:
        if message.body == "bad":
            raise KeyError("tenant")
        if message.body == "list":
            return ["not", "hashable"]
        return "all"

    engine, _ = engine_for(clock, log, publisher, handled, bulk_size=2, prefetch=20, group_by=key)
    task = await started(engine)
    for tag, body in enumerate(["ok", "bad", "list", "fine"], start=1):
        await arrive(engine, make_message(body, channel=channel, tag=tag))
    await let_run()
    await stopped(engine, task)
    assert [["ok", "fine"]] == handled
    reasons = [move.headers["x-bulkworker-reason"] for _, _, move in publisher.published]
    assert ["ungroupable", "ungroupable"] == reasons


def test_group_by_is_checked_at_class_definition() -> None:
    """A number is neither a function nor a header name."""
    with pytest.raises(ConsumerDefinitionError, match=r"Keyed\.group_by must be a function"):

        class Keyed(BulkConsumer):
            queues = ["keyed"]
            group_by = 5

            async def handle(self, messages: list[Message[Any]]) -> None: ...


class ByTenant(BulkConsumer):
    queues = ["by-tenant"]
    bulk_size = 2
    flush_interval = 10.0

    @staticmethod
    def group_by(message: Message[Any]) -> Any:
        return message.body["tenant"]

    async def handle(self, messages: list[Message[Any]]) -> None:
        assert len({m.body["tenant"] for m in messages}) == 1


async def test_the_harness_groups_too() -> None:
    """The harness runs the same engine: one key per bulk, the interval per key."""
    async with ConsumerHarness(ByTenant) as harness:
        await harness.publish_many(
            [{"tenant": "a", "n": 1}, {"tenant": "b", "n": 2}, {"tenant": "a", "n": 3}]
        )
        assert [[{"tenant": "a", "n": 1}, {"tenant": "a", "n": 3}]] == harness.bulks
        await harness.advance(10.0)
    assert [[{"tenant": "b", "n": 2}]] == harness.bulks[1:]


async def test_bulks_by_key_on_the_broker(broker: Broker) -> None:
    """On RabbitMQ with two bulks at once: every bulk holds one tenant, all acked."""
    queue = broker.queue_name("group-by")
    await broker.declare(queue)
    for n in range(300):
        await broker.publish(queue, {"n": n}, headers={"tenant": f"t{n % 7}"})
    bulks: list[list[Any]] = []

    class Tenants(BulkConsumer):
        queues = [queue]
        bulk_size = 10
        prefetch = 40
        max_concurrent_bulks = 2
        flush_interval = 0.3
        group_by = "tenant"

        async def handle(self, messages: list[Message[Any]]) -> None:
            await asyncio.sleep(0.005)
            bulks.append([{**m.body, "tenant": m.headers["tenant"]} for m in messages])

    container, _ = recorded()
    async with Orchestrator([Tenants], container):
        await wait_until(lambda: sum(map(len, bulks)) == 300, timeout=30)
    assert all(len({body["tenant"] for body in bulk}) == 1 for bulk in bulks)
    assert list(range(300)) == sorted(body["n"] for bulk in bulks for body in bulk)
    assert 0 == await broker.ready_count(queue)

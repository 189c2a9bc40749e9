"""Several bulks of one consumer at once: exact acks, bounded concurrency, clean stops."""

import asyncio
import contextlib
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from framework import Actions, BulkConsumer, ConsumerDefinitionError, ConsumerSettings, Message
from framework.core.engine import EngineConfig, build_engine
from framework.testing import FakeChannel, FakeClock, FakePublisher, RecordingLog, make_message
from tests.test_engine import arrive, let_run, settings, started, stopped


class CheckingChannel(FakeChannel):
    """Fails the test the moment an ack covers a tag whose bulk is not finished."""

    def __init__(self, finished: set[int]) -> None:
        super().__init__("checking")
        self.finished = finished
        self.settled: set[int] = set()
        self.delivered: list[int] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        covered = [t for t in self.delivered if t <= delivery_tag and t not in self.settled]
        covered = covered if multiple else [delivery_tag]
        early = [tag for tag in covered if tag not in self.finished]
        assert [] == early, f"acked before their bulk finished: {early}"
        assert not self.settled & set(covered), "a tag settled twice"
        self.settled.update(covered)
        await super().basic_ack(delivery_tag, multiple, wait)


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    concurrent=st.integers(min_value=2, max_value=5),
    bulk_size=st.integers(min_value=1, max_value=6),
    count=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_no_tag_is_acked_before_its_own_bulk_finished(
    concurrent: int, bulk_size: int, count: int, seed: int
) -> None:
    """Random handle durations: every ack, multiple or not, covers only finished bulks' tags."""
    asyncio.run(exact_acks(concurrent, bulk_size, count, seed))


async def exact_acks(concurrent: int, bulk_size: int, count: int, seed: int) -> None:
    chance = random.Random(seed)
    finished: set[int] = set()
    channel = CheckingChannel(finished)

    async def handle(messages: list[Message[Any]]) -> None:
        await asyncio.sleep(chance.random() * 0.003)
        finished.update(message.delivery.tag for message in messages)

    engine = build_engine(
        settings(bulk_size=bulk_size, max_concurrent_bulks=concurrent, prefetch=10_000),
        handle,
        EngineConfig(clock=FakeClock(), log=RecordingLog(), publisher=FakePublisher()),
    )
    task = asyncio.create_task(engine.run())
    for tag in range(1, count + 1):
        channel.delivered.append(tag)
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
        if chance.random() < 0.3:
            await asyncio.sleep(chance.random() * 0.002)
    engine.close()
    await asyncio.wait_for(task, 10)
    assert set(range(1, count + 1)) == channel.settled


async def test_at_most_max_concurrent_bulks_run_at_once(clock, channel, log, publisher) -> None:
    """Three slots: three bulks run together, the fourth waits for a slot."""
    gate = asyncio.Event()
    running: list[int] = []
    most = 0

    async def handle(messages: list[Message[Any]]) -> None:
        nonlocal most
        running.append(1)
        most = max(most, len(running))
        await gate.wait()
        running.pop()

    engine = build_engine(
        settings(bulk_size=2, max_concurrent_bulks=3, prefetch=10),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag in range(1, 9):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    assert (3, 3) == (len(running), most)
    assert 2 == engine.buffered
    gate.set()
    await let_run()
    await stopped(engine, task)
    assert 3 == most
    assert set(range(1, 9)) == set(channel.settled_tags(8))


async def test_close_drains_every_running_and_buffered_bulk(clock, channel, log, publisher) -> None:
    """A stop hands over the partial bulk and waits for every running one."""
    handled: list[int] = []

    async def handle(messages: list[Message[Any]]) -> None:
        await asyncio.sleep(0.01)
        handled.extend(m.body for m in messages)

    engine = build_engine(
        settings(bulk_size=3, max_concurrent_bulks=2, prefetch=10),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag in range(1, 8):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await stopped(engine, task)
    assert list(range(1, 8)) == sorted(handled)
    assert dict.fromkeys(range(1, 8), "ack") == channel.settled_tags(7)


async def test_a_timed_out_bulk_does_not_hold_the_others(clock, channel, log, publisher) -> None:
    """One stuck handle times out alone while the other slots go on."""

    async def handle(messages: list[Message[Any]]) -> None:
        if messages[0].body == 1:
            await asyncio.Event().wait()

    engine = build_engine(
        settings(
            bulk_size=1,
            max_concurrent_bulks=2,
            prefetch=10,
            handler_timeout=0.05,
            on_exception=Actions.REJECT,
        ),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag in range(1, 5):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    for _ in range(200):
        if len(channel.settled_tags(4)) + len(publisher.published) == 4:
            break
        await asyncio.sleep(0.01)
    await stopped(engine, task)
    assert {2: "ack", 3: "ack", 4: "ack"} == {
        tag: action for tag, action in channel.settled_tags(4).items() if tag != 1
    }
    assert [b"1"] == [body for _, body, _ in publisher.published]


async def test_cancelling_the_worker_cancels_every_running_bulk(
    clock, channel, log, publisher
) -> None:
    """An abort stops all handle calls; nothing is acked, the broker will redeliver."""
    started_calls = 0

    async def handle(messages: list[Message[Any]]) -> None:
        nonlocal started_calls
        started_calls += 1
        await asyncio.Event().wait()

    engine = build_engine(
        settings(bulk_size=1, max_concurrent_bulks=3, prefetch=10),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag in range(1, 4):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    assert 3 == started_calls
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert [] == channel.calls


def consumer(**attributes: Any) -> type[BulkConsumer]:
    async def handle(self: Any, messages: list[Message[Any]]) -> None:
        return None

    return type(
        "Parallel", (BulkConsumer,), {"queues": ["parallel"], "handle": handle, **attributes}
    )


def test_prefetch_leaves_room_for_every_concurrent_bulk() -> None:
    """Default prefetch is (N + 1) * bulk_size; an explicit one below N * bulk_size fails."""
    assert 500 == ConsumerSettings.of(consumer(bulk_size=100, max_concurrent_bulks=4)).prefetch
    with pytest.raises(ConsumerDefinitionError, match=r"Parallel\.prefetch is 300, too few"):
        consumer(bulk_size=100, max_concurrent_bulks=4, prefetch=300)
    with pytest.raises(ConsumerDefinitionError, match=r"Parallel\.max_concurrent_bulks must be"):
        consumer(max_concurrent_bulks=0)


async def test_concurrent_bulks_on_the_broker_ack_everything_exactly(broker: Any) -> None:
    """Four bulks at once on RabbitMQ: all 400 handled once, the queue empty, nothing unacked."""
    from framework import Orchestrator
    from tests.broker import wait_until
    from tests.conftest import recorded

    queue = broker.queue_name("concurrent")
    await broker.declare(queue)
    for n in range(400):
        await broker.publish(queue, {"n": n})
    seen: list[int] = []
    running = most = 0
    four_at_once = asyncio.Event()

    class Parallel(BulkConsumer):
        queues = [queue]
        bulk_size = 25
        max_concurrent_bulks = 4
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            if running == 4:
                four_at_once.set()
            # The first bulks wait for the fourth (on a busy machine a short sleep could
            # end before it starts); without concurrency they wait in vain, for 10 s each.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(four_at_once.wait(), timeout=10)
            seen.extend(m.body["n"] for m in messages)
            running -= 1

    container, _ = recorded()
    async with Orchestrator([Parallel], container):
        await wait_until(lambda: len(seen) == 400, timeout=60)
    assert list(range(400)) == sorted(seen)
    assert 4 == most
    assert 0 == await broker.ready_count(queue)


def test_concurrent_bulks_beyond_the_quorum_prefetch_limit_fail_at_definition() -> None:
    """Quorum queues cap prefetch at 2,000: four bulks of 1,000 can never be in flight."""
    with pytest.raises(ConsumerDefinitionError, match=r"Parallel\.max_concurrent_bulks is 4"):
        consumer(
            bulk_size=1000,
            max_concurrent_bulks=4,
            queue_arguments={"x-queue-type": "quorum"},
        )

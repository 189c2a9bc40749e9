"""The bulk engine with a fake channel and a clock the test moves: no sleeps."""

import asyncio
from typing import Any

import pytest

from framework import Actions, ConsumerSettings, Message
from framework.engine import BulkEngine
from framework.testing import FakeChannel, FakeClock, RecordingLog, make_message


def settings(**overrides: Any) -> ConsumerSettings:
    values: dict[str, Any] = {
        "name": "Test",
        "queues": ("test",),
        "bulk_size": 3,
        "flush_interval": 5.0,
        "prefetch": 6,
        "on_success": Actions.ACK,
        "on_exception": Actions.REQUEUE,
        "declare": True,
        "queue_arguments": {},
    }
    return ConsumerSettings(**{**values, **overrides})


class Recorder:
    """A handler that records bulks and can be held or made to fail."""

    def __init__(self) -> None:
        self.bulks: list[list[Any]] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0
        self.fail_with: Exception | None = None
        self.decide: Any = None

    async def __call__(self, messages: list[Message[Any]]) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            self.bulks.append([m.body for m in messages])
            if self.decide:
                self.decide(messages)
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
        finally:
            self.running -= 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


async def let_run() -> None:
    """Let ready tasks run to their next wait (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def started(engine: BulkEngine) -> "asyncio.Task[None]":
    task = asyncio.create_task(engine.run())
    await let_run()
    return task


async def stopped(engine: BulkEngine, task: "asyncio.Task[None]") -> None:
    engine.close()
    await asyncio.wait_for(task, 5)


def feed(engine: BulkEngine, channel: FakeChannel, first: int, last: int) -> None:
    for tag in range(first, last + 1):
        engine.accept(make_message(tag, channel=channel, tag=tag))


async def test_full_bulk_is_handed_over_at_once(clock, channel, log, handler) -> None:
    """bulk_size messages reach handle without any time passing."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert [[1, 2, 3]] == handler.bulks
    assert [("ack", 3, True)] == channel.calls
    await stopped(engine, task)


async def test_partial_bulk_waits_for_flush_interval_from_its_first_message(
    clock, channel, log, handler
) -> None:
    """A partial bulk is handed over when its first message has waited flush_interval."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 1)
    clock.advance(3.0)
    feed(engine, channel, 2, 2)
    clock.advance(1.9)
    await let_run()
    assert [] == handler.bulks
    clock.advance(0.1)
    await let_run()
    assert [[1, 2]] == handler.bulks
    await stopped(engine, task)


async def test_empty_buffer_never_calls_handle(clock, log, handler) -> None:
    """Time passing with nothing buffered calls nothing."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    clock.advance(3600)
    await let_run()
    assert [] == handler.bulks
    await stopped(engine, task)
    assert [] == handler.bulks


async def test_one_handle_at_a_time_while_the_next_bulk_fills(clock, channel, log, handler) -> None:
    """While handle runs, the next bulk fills; size and timer flushes never overlap."""
    handler.gate = asyncio.Event()
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    feed(engine, channel, 4, 7)
    clock.advance(10)
    await let_run()
    assert 1 == len(handler.bulks)
    assert 4 == engine.buffered
    handler.gate.set()
    await let_run()
    clock.advance(10)
    await let_run()
    assert [[1, 2, 3], [4, 5, 6], [7]] == handler.bulks
    assert 1 == handler.most_running
    await stopped(engine, task)


async def test_leftover_timer_counts_from_its_own_first_message(
    clock, channel, log, handler
) -> None:
    """After a full bulk is taken, the rest waits flush_interval from its own first arrival."""
    handler.gate = asyncio.Event()
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    clock.advance(2)
    feed(engine, channel, 4, 4)
    handler.gate.set()
    await let_run()
    clock.advance(4.9)
    await let_run()
    assert 1 == len(handler.bulks)
    clock.advance(0.1)
    await let_run()
    assert [4] == handler.bulks[1]
    await stopped(engine, task)


async def test_decisions_override_the_bulk_action(clock, channel, log, handler) -> None:
    """A message's own decision beats on_success; the others get on_success."""

    def decide(messages: list[Message[Any]]) -> None:
        messages[0].reject()
        messages[1].requeue()

    handler.decide = decide
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert {1: "reject", 2: "requeue", 3: "ack"} == channel.settled_tags(3)
    await stopped(engine, task)


async def test_exception_settles_with_on_exception_and_is_logged(
    clock, channel, log, handler
) -> None:
    """handle raising: on_exception for the undecided, decisions kept, error logged."""

    def decide(messages: list[Message[Any]]) -> None:
        messages[2].ack()

    handler.decide = decide
    handler.fail_with = RuntimeError("store down")
    engine = BulkEngine(settings(on_exception=Actions.REJECT), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert {1: "reject", 2: "reject", 3: "ack"} == channel.settled_tags(3)
    level, msg, extra = log.records[0]
    assert ("error", "Test", 3) == (level, extra["consumer"], extra["bulk_size"])
    assert "handle raised" in msg
    await stopped(engine, task)


async def test_close_hands_over_the_partial_bulk(clock, channel, log, handler) -> None:
    """On close, what is buffered is handled and settled before run() returns."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 2)
    await stopped(engine, task)
    assert [[1, 2]] == handler.bulks
    assert [("ack", 2, True)] == channel.calls
    assert 0 == clock.pending


async def test_close_drains_in_bulks_of_bulk_size(clock, channel, log, handler) -> None:
    """A buffer larger than bulk_size is drained in bulks no larger than bulk_size."""
    handler.gate = asyncio.Event()
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 8)
    await let_run()
    handler.gate.set()
    await stopped(engine, task)
    assert [3, 3, 2] == [len(bulk) for bulk in handler.bulks]


async def test_buffered_messages_of_a_closed_channel_are_dropped(
    clock, channel, log, handler
) -> None:
    """After a reconnect, stale buffered copies never reach handle and are never acked."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 2)
    channel.closed = True
    fresh = FakeChannel("fresh")
    assert 2 == engine.drop_closed()
    feed(engine, fresh, 1, 3)
    await let_run()
    assert [[1, 2, 3]] == handler.bulks
    assert [] == channel.calls
    assert [("ack", 3, True)] == fresh.calls
    await stopped(engine, task)


async def test_settlement_for_a_channel_closed_during_handle_is_skipped_and_logged(
    clock, channel, log, handler
) -> None:
    """A handle running when its channel dies completes; its acks are skipped, not resent."""
    handler.gate = asyncio.Event()
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    channel.closed = True
    handler.gate.set()
    await let_run()
    assert [] == channel.calls
    assert ["channel closed before settlement: messages will be redelivered"] == log.messages(
        "warning"
    )
    await stopped(engine, task)


async def test_refused_message_is_rejected_and_logged(clock, channel, log, handler) -> None:
    """An undecodable delivery is rejected without requeue and logged with queue and id."""
    engine = BulkEngine(settings(), handler, clock=clock, log=log)
    task = await started(engine)
    feed(engine, channel, 1, 1)
    from framework.message import Delivery

    await engine.refuse(Delivery(channel, 2), "test", "m-2", "invalid JSON")
    feed(engine, channel, 3, 4)
    await let_run()
    assert {1: "ack", 2: "reject", 3: "ack", 4: "ack"} == channel.settled_tags(4)
    assert [[1, 3, 4]] == handler.bulks
    _, _, extra = log.records[0]
    assert ("test", "m-2", "invalid JSON") == (extra["queue"], extra["message_id"], extra["error"])
    await stopped(engine, task)

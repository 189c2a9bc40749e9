"""The bulk engine with a fake channel and a clock the test moves: no sleeps."""

import asyncio
import json
from typing import Any

import pytest

from framework import Actions, ConsumerSettings, Message
from framework.engine import BulkEngine
from framework.errors import DecodeError
from framework.routing import ATTEMPTS_HEADER, ERROR_HEADER, QUEUE_HEADER, REASON_HEADER
from framework.testing import FakeChannel, FakeClock, FakePublisher, RecordingLog, make_message


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


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def make_engine(clock, log, handler, publisher):
    def make(custom_handler: Any = None, **overrides: Any) -> BulkEngine:
        return BulkEngine(
            settings(**overrides),
            custom_handler or handler,
            clock=clock,
            log=log,
            publisher=publisher,
        )

    return make


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


async def test_full_bulk_is_handed_over_at_once(clock, channel, log, handler, make_engine) -> None:
    """bulk_size messages reach handle without any time passing."""
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert [[1, 2, 3]] == handler.bulks
    assert [("ack", 3, True)] == channel.calls
    await stopped(engine, task)


async def test_partial_bulk_waits_for_flush_interval_from_its_first_message(
    clock, channel, log, handler, make_engine
) -> None:
    """A partial bulk is handed over when its first message has waited flush_interval."""
    engine = make_engine()
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


async def test_empty_buffer_never_calls_handle(clock, log, handler, make_engine) -> None:
    """Time passing with nothing buffered calls nothing."""
    engine = make_engine()
    task = await started(engine)
    clock.advance(3600)
    await let_run()
    assert [] == handler.bulks
    await stopped(engine, task)
    assert [] == handler.bulks


async def test_one_handle_at_a_time_while_the_next_bulk_fills(
    clock, channel, log, handler, make_engine
) -> None:
    """While handle runs, the next bulk fills; size and timer flushes never overlap."""
    handler.gate = asyncio.Event()
    engine = make_engine()
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
    clock, channel, log, handler, make_engine
) -> None:
    """After a full bulk is taken, the rest waits flush_interval from its own first arrival."""
    handler.gate = asyncio.Event()
    engine = make_engine()
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


async def test_decisions_override_the_bulk_action(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """A message's own decision beats on_success: reject dead-letters, requeue retries."""

    def decide(messages: list[Message[Any]]) -> None:
        messages[0].reject()
        messages[1].requeue()

    handler.decide = decide
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    [dead] = publisher.to("test.dlq")
    assert ("rejected", "test", 0) == (
        dead.headers[REASON_HEADER],
        dead.headers[QUEUE_HEADER],
        dead.headers[ATTEMPTS_HEADER],
    )
    [retry] = publisher.to("test")
    assert 1 == retry.headers[ATTEMPTS_HEADER]
    assert [("ack", 3, False), ("ack", 2, True)] == channel.calls
    await stopped(engine, task)


async def test_exception_settles_with_on_exception_and_is_logged(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """handle raising: on_exception for the undecided, decisions kept, error logged."""

    def decide(messages: list[Message[Any]]) -> None:
        messages[2].ack()

    handler.decide = decide
    handler.fail_with = RuntimeError("store down")
    engine = make_engine(on_exception=Actions.REJECT)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    dead = publisher.to("test.dlq")
    assert [1, 2] == [json.loads(body) for key, body, _ in publisher.published]
    assert {"RuntimeError: store down"} == {p.headers[ERROR_HEADER] for p in dead}
    assert {"exception"} == {p.headers[REASON_HEADER] for p in dead}
    assert {1: "ack", 2: "ack", 3: "ack"} == channel.settled_tags(3)
    level, msg, extra = log.records[0]
    assert ("error", "Test", 3) == (level, extra["consumer"], extra["bulk_size"])
    assert "handle raised" == msg
    await stopped(engine, task)


async def test_close_hands_over_the_partial_bulk(clock, channel, log, handler, make_engine) -> None:
    """On close, what is buffered is handled and settled before run() returns."""
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 2)
    await stopped(engine, task)
    assert [[1, 2]] == handler.bulks
    assert [("ack", 2, True)] == channel.calls
    assert 0 == clock.pending


async def test_close_drains_in_bulks_of_bulk_size(
    clock, channel, log, handler, make_engine
) -> None:
    """A buffer larger than bulk_size is drained in bulks no larger than bulk_size."""
    handler.gate = asyncio.Event()
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 8)
    await let_run()
    handler.gate.set()
    await stopped(engine, task)
    assert [3, 3, 2] == [len(bulk) for bulk in handler.bulks]


async def test_buffered_messages_of_a_closed_channel_are_dropped(
    clock, channel, log, handler, make_engine
) -> None:
    """After a reconnect, stale buffered copies never reach handle and are never acked."""
    engine = make_engine()
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
    clock, channel, log, handler, make_engine
) -> None:
    """A handle running when its channel dies completes; its acks are skipped, not resent."""
    handler.gate = asyncio.Event()
    engine = make_engine()
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


async def test_undecodable_message_is_dead_lettered_and_logged(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """An undecodable delivery never reaches handle; it is dead-lettered with the reason."""
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 1)
    await engine.refuse(
        make_message(b"{bad", channel=channel, tag=2, message_id="m-2"), DecodeError("bad JSON")
    )
    feed(engine, channel, 3, 4)
    await let_run()
    assert [[1, 3, 4]] == handler.bulks
    [(key, body, properties)] = publisher.published
    assert ("test.dlq", b"{bad", "undecodable", "bad JSON") == (
        key,
        body,
        properties.headers[REASON_HEADER],
        properties.headers[ERROR_HEADER],
    )
    assert {1: "ack", 2: "ack", 3: "ack", 4: "ack"} == channel.settled_tags(4)
    _, _, extra = log.records[0]
    assert ("test", "m-2", "bad JSON") == (extra["queue"], extra["message_id"], extra["error"])
    await stopped(engine, task)


async def test_retries_are_bounded_then_dead_lettered(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """A message that keeps failing is retried max_retries times, then dead-lettered."""
    handler.fail_with = ValueError("poison")
    engine = make_engine(bulk_size=1, max_retries=2)
    task = await started(engine)
    for tag, attempts in enumerate([0, 1, 2], start=1):
        message = make_message(
            {"n": 1}, channel=channel, tag=tag, headers={ATTEMPTS_HEADER: attempts}
        )
        engine.accept(message)
        await let_run()
    routes = [
        (key, properties.headers[ATTEMPTS_HEADER]) for key, _, properties in publisher.published
    ]
    assert [("test", 1), ("test", 2), ("test.dlq", 3)] == routes
    assert "retries-exhausted" == publisher.to("test.dlq")[0].headers[REASON_HEADER]
    assert {1: "ack", 2: "ack", 3: "ack"} == channel.settled_tags(3)
    await stopped(engine, task)


async def test_retry_delay_goes_through_the_retry_queue(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """With retry_delay, the copy waits in <queue>.retry with a per-message expiration."""
    handler.fail_with = ValueError("later")
    engine = make_engine(bulk_size=1, retry_delay=2.5)
    task = await started(engine)
    feed(engine, channel, 1, 1)
    await let_run()
    [retry] = publisher.to("test.retry")
    assert "2500" == retry.expiration
    await stopped(engine, task)


async def test_unbounded_retries_are_plain_requeues(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """max_retries = None and no delay: the broker requeues, as asyncworker did."""
    handler.fail_with = ValueError("again")
    engine = make_engine(max_retries=None)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert [] == publisher.published
    assert [("requeue", 1, False), ("requeue", 2, False), ("requeue", 3, False)] == channel.calls
    await stopped(engine, task)


async def test_no_dead_letter_queue_discards_explicitly(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """dead_letter_queue = None: rejects go to the broker without requeue (its DLX, or gone)."""
    handler.decide = lambda messages: messages[0].reject()
    engine = make_engine(bulk_size=1, dead_letter_queue=None)
    task = await started(engine)
    feed(engine, channel, 1, 1)
    await let_run()
    assert [] == publisher.published
    assert [("reject", 1, False)] == channel.calls
    await stopped(engine, task)


async def test_named_dead_letter_queue_with_placeholder(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """dead_letter_queue may name one queue for all, or use {queue}."""
    handler.decide = lambda messages: messages[0].reject()
    engine = make_engine(bulk_size=1, dead_letter_queue="errors.{queue}")
    task = await started(engine)
    feed(engine, channel, 1, 1)
    await let_run()
    assert ["errors.test"] == [key for key, _, _ in publisher.published]
    await stopped(engine, task)


async def test_acks_do_not_wait_for_dead_letter_confirms(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """While a dead-letter publish waits (e.g. a broker alarm), the others are acked."""
    publisher.gate = asyncio.Event()
    handler.decide = lambda messages: messages[1].reject()
    engine = make_engine()
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await let_run()
    assert [("ack", 1, False), ("ack", 3, False)] == channel.calls
    feed(engine, channel, 4, 6)
    await let_run()
    assert 2 == len(handler.bulks)
    publisher.gate.set()
    await let_run()
    assert dict.fromkeys(range(1, 7), "ack") == channel.settled_tags(6)
    await stopped(engine, task)


async def test_isolation_settles_only_the_poison_message_as_failed(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """With isolate_failures, halves run again until the poison stands alone."""
    calls: list[list[int]] = []

    async def fussy(messages: list[Message[Any]]) -> None:
        calls.append([m.body for m in messages])
        if 5 in [m.body for m in messages]:
            raise ValueError("5 is poison")

    engine = make_engine(
        fussy, bulk_size=8, prefetch=16, isolate_failures=True, on_exception=Actions.REJECT
    )
    task = await started(engine)
    feed(engine, channel, 1, 8)
    await let_run()
    assert [b"5"] == [body for _, body, _ in publisher.published]
    assert 1 + 2 * 3 == len(calls)  # the bulk, then 2 * log2(8) re-runs
    assert dict.fromkeys(range(1, 9), "ack") == channel.settled_tags(8)
    assert ["failures isolated"] == log.messages("warning")[:1]
    await stopped(engine, task)


async def test_isolation_forgets_decisions_of_failed_runs(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """A decision made in a run that raised does not survive into the re-run."""

    async def decides_then_fails(messages: list[Message[Any]]) -> None:
        for message in messages:
            if len(messages) > 1:
                message.reject()
        if len(messages) > 1:
            raise ValueError("only alone")

    engine = make_engine(decides_then_fails, bulk_size=2, prefetch=4, isolate_failures=True)
    task = await started(engine)
    feed(engine, channel, 1, 2)
    await let_run()
    assert [] == publisher.published
    assert [("ack", 2, True)] == channel.calls
    await stopped(engine, task)


async def test_handler_timeout_counts_as_an_exception(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """A handle running past handler_timeout is cancelled and settled with on_exception."""

    async def stuck(messages: list[Message[Any]]) -> None:
        await asyncio.Event().wait()

    engine = make_engine(stuck, handler_timeout=0.01, on_exception=Actions.REJECT)
    task = await started(engine)
    feed(engine, channel, 1, 3)
    await asyncio.wait_for(wait_for(lambda: len(publisher.published) == 3), 5)
    assert {"HandlerTimeoutError: handle took longer than handler_timeout=0.01s"} == {
        properties.headers[ERROR_HEADER] for properties in publisher.to("test.dlq")
    }
    await stopped(engine, task)


async def wait_for(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.005)

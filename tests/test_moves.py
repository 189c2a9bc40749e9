"""Moves that cannot be carried out: held originals, capped backoff, no hot loop (fakes only)."""

import asyncio

import pytest

from framework.core.engine import BulkEngine, EngineConfig, build_engine
from framework.core.moves import PauseSchedule
from framework.core.watch import Outcome
from framework.errors import PublishError, UnroutableError
from framework.testing import FakeChannel, FakeClock, RecordingLog, make_message
from tests.test_engine import Recorder, arrive, let_run, settings, started, stopped

HELD = "could not publish the dead-letter copy: holding the message, trying again"


class RecordingDeclarer:
    """Records the queues the mover asks to declare again."""

    def __init__(self) -> None:
        self.declared: list[str] = []

    async def declare(self, queue: str) -> None:
        self.declared.append(queue)


@pytest.fixture
def declarer() -> RecordingDeclarer:
    return RecordingDeclarer()


@pytest.fixture
def handler() -> Recorder:
    recorder = Recorder()
    # The message with body 1 is refused; the others succeed.
    recorder.decide = lambda messages: [m.reject() for m in messages if m.body == 1]
    return recorder


@pytest.fixture
def engine(clock, log, handler, publisher, declarer) -> BulkEngine:
    return build_engine(
        settings(bulk_size=1, prefetch=10),
        handler,
        EngineConfig(
            clock=clock, log=log, publisher=publisher, reconnect_max_delay=4.0, declarer=declarer
        ),
    )


async def deliver(engine: BulkEngine, channel: FakeChannel, body: int) -> None:
    await arrive(engine, make_message(body, channel=channel, tag=body, message_id=str(body)))


def pauses_logged(log: RecordingLog) -> list[float]:
    return [extra["retry_in"] for level, msg, extra in log.records if msg == HELD]


async def advance(clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    await let_run()


def test_pause_schedule_doubles_and_caps() -> None:
    """Pauses start at the first value, double, and never exceed the cap."""
    schedule = PauseSchedule(0.5, 4.0)
    assert [0.5, 1.0, 2.0, 4.0, 4.0, 4.0] == [schedule.next() for _ in range(6)]


async def test_refused_copy_holds_the_original_with_capped_backoff(
    engine, clock, channel, log, publisher
) -> None:
    """A refused copy is tried again after 0.5, 1, 2, 4, 4 s; the original is never settled."""
    publisher.fail_with = PublishError("nacked")
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    assert 1 == publisher.attempts
    for pause in (0.5, 1.0, 2.0, 4.0, 4.0):
        await advance(clock, pause - 0.01)
        attempts = publisher.attempts
        await advance(clock, 0.01)
        assert attempts + 1 == publisher.attempts
    assert 6 == publisher.attempts
    assert [0.5, 1.0, 2.0, 4.0, 4.0, 4.0] == pauses_logged(log)
    assert [] == channel.calls  # neither acked nor requeued
    assert 1 == engine.moves_pending
    first = next(extra for _, msg, extra in log.records if msg == HELD)
    assert {
        "consumer": "Test",
        "destination": "test.dlq",
        "kind": "dead-letter",
        "attempt": 1,
        "retry_in": 0.5,
        "error": "PublishError: nacked",
        "count": 1,
        "message_ids": ["1"],
    } == first
    await engine.abandon_moves()
    task.cancel()


async def test_other_messages_keep_flowing_while_a_move_is_held(
    engine, clock, channel, handler, publisher
) -> None:
    """While one original is held, later messages are handled and acked."""
    publisher.fail_with = PublishError("nacked")
    task = await started(engine)
    for body in (1, 2, 3, 4):
        await deliver(engine, channel, body)
        await let_run()
    assert [[1], [2], [3], [4]] == handler.bulks
    assert [("ack", 2, False), ("ack", 3, False), ("ack", 4, False)] == channel.calls
    await engine.abandon_moves()
    task.cancel()


async def test_held_move_is_carried_out_once_the_broker_takes_it(
    engine, clock, channel, log, publisher
) -> None:
    """After three refusals the copy is confirmed, and only then the original is acked."""
    publisher.fail_with = PublishError("nacked")
    publisher.fail_times = 3
    outcomes: list[Outcome] = []
    engine.observe(outcomes.append)
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    await advance(clock, 0.5)
    await advance(clock, 1.0)
    assert [] == channel.calls
    await advance(clock, 2.0)
    assert ["test.dlq"] == [key for key, _, _ in publisher.published]
    assert [("ack", 1, False)] == channel.calls
    assert [("dead-letter", "test.dlq")] == [(o.kind, o.destination) for o in outcomes]
    assert 0 == engine.moves_pending
    assert [0.5, 1.0, 2.0] == pauses_logged(log)
    await stopped(engine, task)


async def test_abandon_leaves_held_originals_unacked(engine, clock, channel, publisher) -> None:
    """abandon_moves stops the retries at once; the held original is neither acked nor requeued."""
    publisher.fail_with = PublishError("nacked")
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    await asyncio.wait_for(engine.abandon_moves(), 1)
    await advance(clock, 60)
    assert 1 == publisher.attempts
    assert [] == channel.calls
    assert 0 == engine.moves_pending
    task.cancel()


async def test_drain_waits_for_a_held_move(engine, clock, channel, publisher) -> None:
    """finish_moves (the drain) returns only once the held move is carried out."""
    publisher.fail_with = PublishError("nacked")
    publisher.fail_times = 1
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    engine.close()
    await let_run()
    assert not task.done()
    await advance(clock, 0.5)
    await asyncio.wait_for(task, 1)
    assert [("ack", 1, False)] == channel.calls


async def test_closed_channel_gives_up_the_held_move(
    engine, clock, channel, log, publisher
) -> None:
    """The original's channel closes while held: the move is given up, the broker redelivers."""
    publisher.fail_with = PublishError("nacked")
    outcomes: list[Outcome] = []
    engine.observe(outcomes.append)
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    channel.closed = True
    await advance(clock, 30)
    assert 1 == publisher.attempts
    assert 0 == engine.moves_pending
    assert ["requeue"] == [outcome.kind for outcome in outcomes]
    assert [
        "channel closed while a move was held: the broker redelivers the messages"
    ] == log.messages("warning")[1:]
    task.cancel()


async def test_unroutable_copy_to_a_declared_queue_declares_it_again(
    engine, clock, channel, log, publisher, declarer
) -> None:
    """NO_ROUTE for the .dlq the consumer declares: declared again before the next try."""
    publisher.fail_with = UnroutableError("returned unroutable (NO_ROUTE)")
    publisher.fail_times = 1
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    assert [] == declarer.declared
    await advance(clock, 0.5)
    assert ["test.dlq"] == declarer.declared
    assert [("ack", 1, False)] == channel.calls
    assert "a queue the consumer declared was gone: declared it again" in log.messages("warning")
    await stopped(engine, task)


async def test_a_nack_does_not_declare_again(engine, clock, channel, publisher, declarer) -> None:
    """Only an unroutable copy means the queue is gone: a nack (full queue) declares nothing."""
    publisher.fail_with = PublishError("nacked")
    publisher.fail_times = 1
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    await advance(clock, 0.5)
    assert [] == declarer.declared
    assert [("ack", 1, False)] == channel.calls
    await stopped(engine, task)


async def test_header_that_cannot_be_encoded_is_held_not_looped(
    clock, channel, log, handler, publisher
) -> None:
    """Any publish error (here an encoding error) holds the original instead of requeueing it."""
    engine = build_engine(
        settings(bulk_size=1), handler, EngineConfig(clock=clock, log=log, publisher=publisher)
    )
    publisher.fail_with = OverflowError("float too large to pack with f format")
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    for _ in range(20):
        await advance(clock, 0.5)
    assert [] == channel.calls
    assert 5 == publisher.attempts  # 0, 0.5, 1.5, 3.5, 7.5 s
    assert [[1]] == handler.bulks
    await engine.abandon_moves()
    task.cancel()


async def test_a_failed_declaration_is_the_cause_of_the_next_pause(
    engine, clock, channel, log, publisher, declarer
) -> None:
    """Declaring the gone queue fails: no publish is tried, and the next pause names that error."""

    async def refuse(queue: str) -> None:
        raise PermissionError(f"may not declare {queue}")

    declarer.declare = refuse
    publisher.fail_with = UnroutableError("returned unroutable (NO_ROUTE)")
    task = await started(engine)
    await deliver(engine, channel, 1)
    await let_run()
    await advance(clock, 0.5)
    assert 1 == publisher.attempts
    errors = [extra["error"] for _, msg, extra in log.records if msg == HELD]
    assert ["UnroutableError: returned unroutable (NO_ROUTE)"] == errors[:1]
    assert ["PermissionError: may not declare test.dlq"] == errors[1:]
    await engine.abandon_moves()
    task.cancel()

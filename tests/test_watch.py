"""The engine's events as watchers see them: reasons, waits, call outcomes, decided kinds."""

import asyncio
from typing import Any

import pytest

from framework import Actions, Message
from framework.core.engine import EngineConfig, build_engine
from framework.core.outcome import OutcomeKind
from framework.core.watch import (
    EVENTS,
    Bulk,
    BulkDone,
    CallOutcome,
    FlushReason,
    HandleEnd,
    Outcome,
    Watcher,
    Watchers,
)
from framework.testing import make_message
from tests.test_engine import arrive, let_run, settings, started, stopped


class Recording(Watcher):
    """A watcher that keeps every event it is told."""

    def __init__(self) -> None:
        self.arrivals: list[Any] = []
        self.bulks: list[Bulk] = []
        self.ends: list[HandleEnd] = []
        self.done: list[BulkDone] = []
        self.outcomes: list[Outcome] = []

    def received(self, message: Message[Any]) -> None:
        self.arrivals.append(message.raw)

    def bulk_taken(self, bulk: Bulk) -> None:
        self.bulks.append(bulk)

    def call_ended(self, end: HandleEnd) -> None:
        self.ends.append(end)

    def bulk_done(self, done: BulkDone) -> None:
        self.done.append(done)

    def settled(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


@pytest.fixture
def watcher() -> Recording:
    return Recording()


def engine_with(handler: Any, watcher: Watcher, clock, log, publisher, **overrides: Any):
    return build_engine(
        settings(**overrides),
        handler,
        EngineConfig(clock=clock, log=log, publisher=publisher, watcher=watcher),
    )


async def accept_all(messages: list[Message[Any]]) -> None:
    return None


async def test_each_bulk_carries_why_it_left_the_buffer_and_how_long_it_waited(
    clock, channel, log, publisher, watcher
) -> None:
    """Size, interval, forced and shutdown flushes are told apart; waits are on the clock."""
    engine = engine_with(accept_all, watcher, clock, log, publisher)
    task = await started(engine)
    for tag in (1, 2, 3):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    await arrive(engine, make_message(4, channel=channel, tag=4))
    clock.advance(5.0)
    await let_run()
    await arrive(engine, make_message(5, channel=channel, tag=5))
    clock.advance(1.5)
    engine.flush_now()
    await let_run()
    await arrive(engine, make_message(6, channel=channel, tag=6))
    clock.advance(0.5)
    await stopped(engine, task)
    expected = [
        (FlushReason.SIZE, 3, 0.0),
        (FlushReason.INTERVAL, 1, 5.0),
        (FlushReason.FORCED, 1, 1.5),
        (FlushReason.SHUTDOWN, 1, 0.5),
    ]
    assert expected == [(b.reason, b.size, b.waited) for b in watcher.bulks]
    assert 6 == len(watcher.arrivals)


async def test_call_outcomes_and_decided_kinds_are_reported_per_bulk(
    clock, channel, log, publisher, watcher
) -> None:
    """A failing bulk reports an error call, its dead letters; a good one its acks."""
    failing = True

    async def handle(messages: list[Message[Any]]) -> None:
        if failing:
            raise ValueError("sink down")

    engine = engine_with(handle, watcher, clock, log, publisher, on_exception=Actions.REJECT)
    task = await started(engine)
    for tag in (1, 2, 3):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    failing = False
    for tag in (4, 5, 6):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    await stopped(engine, task)
    assert [CallOutcome.ERROR, CallOutcome.SUCCESS] == [end.outcome for end in watcher.ends]
    assert isinstance(watcher.ends[0].error, ValueError)
    assert [{OutcomeKind.DEAD_LETTER: 3}, {OutcomeKind.ACK: 3}] == [
        dict(done.outcomes) for done in watcher.done
    ]
    assert [True, False] == [done.failed for done in watcher.done]
    kinds = sorted(outcome.kind for outcome in watcher.outcomes)
    assert [OutcomeKind.ACK] * 3 + [OutcomeKind.DEAD_LETTER] * 3 == kinds


async def test_a_timed_out_call_is_reported_as_a_timeout(
    clock, channel, log, publisher, watcher
) -> None:
    """handle running past handler_timeout ends as TIMEOUT, not as a plain error."""

    async def stuck(messages: list[Message[Any]]) -> None:
        await asyncio.Event().wait()

    engine = engine_with(stuck, watcher, clock, log, publisher, handler_timeout=0.01)
    task = await started(engine)
    for tag in (1, 2, 3):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    for _ in range(200):
        if watcher.ends:
            break
        await asyncio.sleep(0.01)
    await stopped(engine, task)
    assert [CallOutcome.TIMEOUT] == [end.outcome for end in watcher.ends]


async def test_oldest_buffered_seconds_follows_the_clock(clock, channel, log, publisher) -> None:
    """The age of the oldest buffered message, 0 when the buffer is empty."""
    engine = engine_with(accept_all, Watcher(), clock, log, publisher)
    assert 0.0 == engine.oldest_buffered_seconds
    await arrive(engine, make_message(1, channel=channel, tag=1))
    clock.advance(2.5)
    assert 2.5 == engine.oldest_buffered_seconds


async def test_a_call_cut_short_by_cancelling_the_worker_still_ends_for_watchers(
    clock, channel, log, publisher, watcher
) -> None:
    """An abort mid-handle: the watcher hears the call end (a span is never left open)."""

    async def stuck(messages: list[Message[Any]]) -> None:
        await asyncio.Event().wait()

    engine = engine_with(stuck, watcher, clock, log, publisher)
    task = await started(engine)
    for tag in (1, 2, 3):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert [CallOutcome.ERROR] == [end.outcome for end in watcher.ends]
    assert isinstance(watcher.ends[0].error, asyncio.CancelledError)


def test_the_events_are_the_watchers_methods_and_no_more() -> None:
    """Every public name of Watcher is an event Watchers passes on: a new public helper
    on Watcher would become one, so the list is spelled out here."""
    assert (
        "received",
        "bulk_taken",
        "call_started",
        "call_ended",
        "bulk_done",
        "settled",
        "paused",
        "resumed",
        "task_ran",
        "task_skipped",
    ) == EVENTS
    for event in EVENTS:
        assert getattr(Watchers, event) is not getattr(Watcher, event), event

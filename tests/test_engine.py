"""The bulk engine with a fake channel and a clock the test moves: no sleeps."""

import asyncio
import contextlib
import json
from typing import Any

import pytest

from framework import Actions, ConsumerSettings, Message
from framework.core.engine import BulkEngine, EngineConfig, build_engine
from framework.core.headers import ATTEMPTS_HEADER, ERROR_HEADER, QUEUE_HEADER, REASON_HEADER
from framework.core.message import Delivery
from framework.errors import DecodeError
from framework.testing import FakeChannel, make_message


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
def make_engine(clock, log, handler, publisher):
    def make(custom_handler: Any = None, **overrides: Any) -> BulkEngine:
        return build_engine(
            settings(**overrides),
            custom_handler or handler,
            EngineConfig(clock=clock, log=log, publisher=publisher),
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
def handler() -> Recorder:
    return Recorder()


async def let_run() -> None:
    """Let ready tasks run to their next wait (no time passes)."""
    for _ in range(100):
        await asyncio.sleep(0)


async def started(engine: BulkEngine) -> "asyncio.Task[None]":
    task = asyncio.create_task(engine.run())
    await let_run()
    return task


async def stopped(engine: BulkEngine, task: "asyncio.Task[None]") -> None:
    engine.close()
    await asyncio.wait_for(task, 5)


async def arrive(engine: BulkEngine, message: Message[Any]) -> None:
    """Hand ``message`` over as the transport does: its refusal, if any, is awaited."""
    refusal = engine.receive(message)
    if refusal is not None:
        await refusal


async def feed(engine: BulkEngine, channel: FakeChannel, first: int, last: int) -> None:
    for tag in range(first, last + 1):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))


async def test_full_bulk_is_handed_over_at_once(clock, channel, log, handler, make_engine) -> None:
    """bulk_size messages reach handle without any time passing."""
    engine = make_engine()
    task = await started(engine)
    await feed(engine, channel, 1, 3)
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
    await feed(engine, channel, 1, 1)
    clock.advance(3.0)
    await feed(engine, channel, 2, 2)
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
    await feed(engine, channel, 1, 3)
    await let_run()
    await feed(engine, channel, 4, 7)
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
    await feed(engine, channel, 1, 3)
    await let_run()
    clock.advance(2)
    await feed(engine, channel, 4, 4)
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
    await feed(engine, channel, 1, 3)
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
    await feed(engine, channel, 1, 3)
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
    await feed(engine, channel, 1, 2)
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
    await feed(engine, channel, 1, 8)
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
    await feed(engine, channel, 1, 2)
    channel.closed = True
    fresh = FakeChannel("fresh")
    assert 2 == engine.drop_closed()
    await feed(engine, fresh, 1, 3)
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
    await feed(engine, channel, 1, 3)
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
    await feed(engine, channel, 1, 1)
    await engine.refuse(
        make_message(b"{bad", channel=channel, tag=2, message_id="m-2"), DecodeError("bad JSON")
    )
    await feed(engine, channel, 3, 4)
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
        await arrive(engine, message)
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
    await feed(engine, channel, 1, 1)
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
    await feed(engine, channel, 1, 3)
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
    await feed(engine, channel, 1, 1)
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
    await feed(engine, channel, 1, 1)
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
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [("ack", 1, False), ("ack", 3, False)] == channel.calls
    await feed(engine, channel, 4, 6)
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
    await feed(engine, channel, 1, 8)
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
    await feed(engine, channel, 1, 2)
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
    await feed(engine, channel, 1, 3)
    await asyncio.wait_for(wait_for(lambda: len(publisher.published) == 3), 5)
    assert {"HandlerTimeoutError: handle took longer than handler_timeout=0.01s"} == {
        properties.headers[ERROR_HEADER] for properties in publisher.to("test.dlq")
    }
    await stopped(engine, task)


async def wait_for(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.005)


def delivered(raw: bytes, channel: FakeChannel, tag: int, content_type: str | None) -> Message[Any]:
    """A message as the transport builds it: the body still raw, not yet decoded."""
    return Message(
        body=raw,
        raw=raw,
        queue="test",
        routing_key="test",
        delivery=Delivery(channel, tag),
        content_type=content_type,
    )


def times_settled(channel: FakeChannel) -> dict[int, int]:
    """How many settlement frames covered each tag (a multiple ack covers all below)."""
    covered: dict[int, int] = {}
    settled: set[int] = set()
    for _, tag, multiple in channel.calls:
        tags = [t for t in range(1, tag + 1) if t not in settled] if multiple else [tag]
        for each in tags:
            covered[each] = covered.get(each, 0) + 1
            settled.add(each)
    return covered


DEEP = b"[" * 100000 + b"]" * 100000


@pytest.mark.parametrize("content_type", ["application/json", None])
async def test_deeply_nested_body_is_dead_lettered_never_acked_by_a_later_bulk(
    clock, channel, log, handler, publisher, make_engine, content_type
) -> None:
    """A body the JSON parser recurses on is dead-lettered alone; the good ones are handled."""
    engine = make_engine()
    task = await started(engine)
    for tag, raw in enumerate([b'"good-1"', DEEP, b'"good-2"', b'"good-3"'], start=1):
        refusal = engine.receive(delivered(raw, channel, tag, content_type))
        if refusal is not None:
            await refusal
    await let_run()
    assert [["good-1", "good-2", "good-3"]] == handler.bulks
    [(key, body, properties)] = publisher.published
    assert ("test.dlq", DEEP, "undecodable") == (key, body, properties.headers[REASON_HEADER])
    assert "nested too deeply" in properties.headers[ERROR_HEADER]
    assert {1: 1, 2: 1, 3: 1, 4: 1} == times_settled(channel)
    await stopped(engine, task)


async def test_a_delivery_is_tracked_before_decoding_even_while_its_dead_letter_waits(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """While an undecodable message's copy awaits its confirm, later acks never cover it."""

    def explodes(raw: bytes, content_type: str | None) -> Any:
        if raw == b"bad":
            raise RecursionError("deep")  # not an Exception the decoder guard expects
        return raw.decode()

    publisher.gate = asyncio.Event()
    engine = make_engine(decoder=explodes)
    task = await started(engine)
    raws = [b"a", b"bad", b"b", b"c"]
    refusals = [
        engine.receive(delivered(raw, channel, tag, None)) for tag, raw in enumerate(raws, start=1)
    ]
    refusing = [asyncio.ensure_future(r) for r in refusals if r is not None]
    await let_run()
    assert [["a", "b", "c"]] == handler.bulks
    assert [("ack", 1, False), ("ack", 3, False), ("ack", 4, False)] == channel.calls
    publisher.gate.set()
    await asyncio.gather(*refusing)
    await let_run()
    assert {1: 1, 2: 1, 3: 1, 4: 1} == times_settled(channel)
    [properties] = publisher.to("test.dlq")
    assert "the decoder raised RecursionError: deep" == properties.headers[ERROR_HEADER]
    await stopped(engine, task)


async def test_any_exception_from_decoding_dead_letters_with_its_text(
    clock, channel, log, handler, publisher, make_engine
) -> None:
    """An exception of any type while decoding is 'undecodable', with the error's text."""

    class Broken(Exception):
        pass

    engine = make_engine()
    engine.reception.decode = lambda raw, content_type: (_ for _ in ()).throw(Broken("no way"))
    task = await started(engine)
    refusal = engine.receive(delivered(b"x", channel, 1, None))
    assert refusal is not None
    await refusal
    await let_run()
    [properties] = publisher.to("test.dlq")
    assert ("undecodable", "decoding raised Broken: no way") == (
        properties.headers[REASON_HEADER],
        properties.headers[ERROR_HEADER],
    )
    assert [("ack", 1, False)] == channel.calls
    await stopped(engine, task)


class Unusual(BaseException):
    """A BaseException of the user's own: what careless user code might raise."""


@pytest.mark.parametrize(
    "raised",
    [Unusual("odd"), GeneratorExit(), SystemExit(3), KeyboardInterrupt()],
    ids=["own-base", "generator-exit", "system-exit", "keyboard-interrupt"],
)
async def test_a_decoder_raising_any_base_exception_dead_letters_that_message_alone(
    clock, channel, log, handler, publisher, raised
) -> None:
    """A decoder raising a BaseException: that message is dead-lettered, the next one handled;
    an exit request is passed on (once, after the dead letter is on its way)."""
    requests: list[BaseException] = []
    engine = build_engine(
        settings(bulk_size=1),
        handler,
        EngineConfig(clock=clock, log=log, publisher=publisher, on_exit_request=requests.append),
    )

    def decode(raw: bytes, content_type: str | None) -> Any:
        if raw == b"bad":
            raise raised
        return json.loads(raw)

    engine.reception.decode = decode
    task = await started(engine)
    refusal = engine.receive(delivered(b"bad", channel, 1, None))
    assert refusal is not None
    await refusal
    assert engine.receive(delivered(b"2", channel, 2, None)) is None
    await let_run()
    assert [b"bad"] == [body for key, body, _ in publisher.published if key == "test.dlq"]
    assert [[2]] == handler.bulks
    assert {("ack", 1, False), ("ack", 2, False)} == set(channel.calls)
    exit_request = isinstance(raised, SystemExit | KeyboardInterrupt)
    assert ([raised] if exit_request else []) == requests
    await stopped(engine, task)


@pytest.mark.parametrize(
    ("change", "expected_bodies"),
    [
        (lambda messages: messages.clear(), []),
        (lambda messages: messages.pop(0), [2, 3]),
        (lambda messages: messages.append(messages[0]), [1, 2, 3, 1]),
    ],
    ids=["clear", "pop", "append"],
)
async def test_handle_may_change_its_list_settlement_goes_by_the_engines_bulk(
    clock, channel, log, make_engine, change, expected_bodies
) -> None:
    """clear / pop / append on the handed list: every message settled exactly once."""
    seen: list[list[int]] = []

    async def meddles(messages: list[Message[Any]]) -> None:
        change(messages)
        seen.append([m.body for m in messages])

    engine = make_engine(meddles)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [expected_bodies] == seen
    assert {1: 1, 2: 1, 3: 1} == times_settled(channel)
    assert 0 == engine.settler.ledger.unsettled_count()
    await stopped(engine, task)


async def test_a_duplicated_failing_message_is_requeued_once(
    clock, channel, log, make_engine
) -> None:
    """append(messages[0]) then raise: each tag is requeued once, never twice."""

    async def duplicates_then_fails(messages: list[Message[Any]]) -> None:
        messages.append(messages[0])
        raise ValueError("down")

    engine = make_engine(duplicates_then_fails, max_retries=None)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [("requeue", 1, False), ("requeue", 2, False), ("requeue", 3, False)] == channel.calls
    await stopped(engine, task)


async def test_decisions_on_messages_count_whatever_happens_to_the_list(
    clock, channel, log, publisher, make_engine
) -> None:
    """A message rejected and then removed from the list is still dead-lettered."""

    async def rejects_and_removes(messages: list[Message[Any]]) -> None:
        messages.pop(1).reject()

    engine = make_engine(rejects_and_removes)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [b"2"] == [body for key, body, _ in publisher.published if key == "test.dlq"]
    assert {1: 1, 2: 1, 3: 1} == times_settled(channel)
    await stopped(engine, task)


async def test_messages_of_a_channel_that_died_unnoticed_never_reach_handle(
    clock, channel, log, handler, make_engine
) -> None:
    """A channel closed between arrival and bulk: its buffered messages are dropped at take."""
    handler.gate = asyncio.Event()
    engine = make_engine()
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    await feed(engine, channel, 4, 5)
    channel.closed = True  # the transport has not noticed yet: no drop_closed()
    fresh = FakeChannel("fresh")
    await feed(engine, fresh, 1, 3)
    handler.gate.set()
    await let_run()
    assert [[1, 2, 3], [1, 2, 3]] == handler.bulks
    assert [("ack", 3, True)] == fresh.calls
    assert 2 == engine.dropped_closed
    assert (
        "buffered messages of a closed channel dropped: the broker redelivers them"
        in log.messages("warning")
    )
    await stopped(engine, task)


@pytest.mark.parametrize(
    ("raised", "exit_request"),
    [
        (asyncio.CancelledError(), False),
        (SystemExit(3), True),
        (KeyboardInterrupt(), True),
        (Unusual("odd"), False),
    ],
    ids=["CancelledError", "SystemExit", "KeyboardInterrupt", "BaseException"],
)
async def test_base_exception_in_handle_fails_the_bulk_and_the_worker_goes_on(
    clock, channel, log, publisher, make_engine, raised, exit_request
) -> None:
    """CancelledError, SystemExit, KeyboardInterrupt... from handle fail that bulk alone."""
    calls = 0
    requests: list[tuple[BaseException, list[Any]]] = []

    async def raises_once(messages: list[Message[Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise raised

    engine = build_engine(
        settings(on_exception=Actions.REJECT),
        raises_once,
        EngineConfig(
            clock=clock,
            log=log,
            publisher=publisher,
            on_exit_request=lambda error: requests.append((error, list(channel.calls))),
        ),
    )
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    await feed(engine, channel, 4, 6)
    await let_run()
    name = type(raised).__name__
    assert 3 == len(publisher.to("test.dlq"))
    assert {name} == {p.headers[ERROR_HEADER].split(":")[0] for p in publisher.to("test.dlq")}
    assert dict.fromkeys(range(1, 7), 1) == times_settled(channel)
    [(_, msg, extra)] = [r for r in log.records if r[0] == "error"]
    assert ("handle raised", "Test", 3, name) == (
        msg,
        extra["consumer"],
        extra["bulk_size"],
        extra["exception"],
    )
    assert not task.done()
    assert ([raised] if exit_request else []) == [request for request, _ in requests]
    await stopped(engine, task)


async def test_exit_request_is_passed_on_once_after_its_bulk_is_settled(
    clock, channel, log, publisher
) -> None:
    """on_exit_request gets the SystemExit once, when the bulk's settlements are sent."""
    requests: list[tuple[BaseException, list[Any]]] = []

    async def exits(messages: list[Message[Any]]) -> None:
        raise SystemExit(0)

    engine = build_engine(
        settings(max_retries=None),
        exits,
        EngineConfig(
            clock=clock,
            log=log,
            publisher=publisher,
            on_exit_request=lambda error: requests.append((error, list(channel.calls))),
        ),
    )
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    [(request, calls_then)] = requests
    assert "SystemExit" == type(request).__name__
    assert [("requeue", 1, False), ("requeue", 2, False), ("requeue", 3, False)] == calls_then
    assert not task.done()
    await stopped(engine, task)


async def test_exit_request_with_isolation_fails_only_the_message_that_raises(
    clock, channel, log, publisher, make_engine
) -> None:
    """isolate_failures applies to SystemExit too; the exit request is passed on."""
    requests: list[BaseException] = []

    async def exits_on_two(messages: list[Message[Any]]) -> None:
        if 2 in [m.body for m in messages]:
            raise SystemExit("stop")

    engine = build_engine(
        settings(on_exception=Actions.REJECT, isolate_failures=True),
        exits_on_two,
        EngineConfig(clock=clock, log=log, publisher=publisher, on_exit_request=requests.append),
    )
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [b"2"] == [body for _, body, _ in publisher.published]
    assert {1: 1, 2: 1, 3: 1} == times_settled(channel)
    assert requests
    assert {SystemExit} == {type(request) for request in requests}
    await stopped(engine, task)


async def test_cancelling_the_worker_still_cancels_it(clock, channel, log, handler, make_engine):
    """The engine's own task cancelled during handle ends cancelled; nothing is settled."""
    handler.gate = asyncio.Event()
    engine = make_engine()
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert [] == channel.calls
    assert 0 == engine.abandoned_handlers


class Swallower:
    """A handle that ignores cancellation until told to stop."""

    def __init__(self) -> None:
        self.stop = False
        self.calls = 0

    async def __call__(self, messages: list[Message[Any]]) -> None:
        self.calls += 1
        if self.calls > 1:
            return
        while not self.stop:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)


async def release(engine: BulkEngine, swallower: Swallower) -> None:
    swallower.stop = True
    for task in list(engine.handling.abandoned):
        task.cancel()
    await asyncio.wait_for(wait_for(lambda: engine.abandoned_handlers == 0), 5)


async def test_handler_timeout_holds_for_a_handler_that_swallows_cancellation(
    clock, channel, log, publisher
) -> None:
    """Past handler_timeout plus a grace the call is abandoned, the bulk failed, the rest flows."""
    swallower = Swallower()
    engine = build_engine(
        settings(handler_timeout=0.05, on_exception=Actions.REJECT),
        swallower,
        EngineConfig(clock=clock, log=log, publisher=publisher, cancel_grace=0.05),
    )
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await asyncio.wait_for(wait_for(lambda: len(publisher.published) == 3), 5)
    await feed(engine, channel, 4, 6)
    await asyncio.wait_for(wait_for(lambda: 6 == len(times_settled(channel))), 5)
    assert {"HandlerTimeoutError: handle took longer than handler_timeout=0.05s"} == {
        properties.headers[ERROR_HEADER] for properties in publisher.to("test.dlq")
    }
    assert 1 == engine.abandoned_handlers
    [(_, extra)] = [
        (msg, extra) for _, msg, extra in log.records if msg.startswith("handle ignored")
    ]
    assert ("Test", 0.05) == (extra["consumer"], extra["seconds"])
    assert 2 == swallower.calls
    await release(engine, swallower)
    await stopped(engine, task)


async def test_cancelled_worker_stops_within_the_grace_despite_a_swallowing_handler(
    clock, channel, log, publisher
) -> None:
    """Aborting the worker while handle ignores cancellation ends it within the grace."""
    swallower = Swallower()
    engine = build_engine(
        settings(),
        swallower,
        EngineConfig(clock=clock, log=log, publisher=publisher, cancel_grace=0.1),
    )
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    started_at = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert asyncio.get_running_loop().time() - started_at < 2
    assert 1 == engine.abandoned_handlers
    assert [] == channel.calls
    await release(engine, swallower)

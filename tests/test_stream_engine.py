"""Stream consumers without a broker: what a stream refuses, where reading resumes, no nacks."""

import asyncio
import datetime
import json
from typing import Any

import attrs
import pytest

from framework import Actions, BulkConsumer, ConsumerDefinitionError, Message, StreamStartError
from framework.core.engine import BulkEngine, EngineConfig, build_engine
from framework.core.stream import StreamPosition, stored_offset_hook
from framework.testing import ConsumerHarness, FakeChannel
from framework.wiring.assembly import plan
from framework.wiring.injection import injecting_handler
from tests.conftest import make_container
from tests.test_breaker import FakeIntake, advance
from tests.test_engine import Recorder, delivered, let_run, settings, started, stopped

STREAM = {"x-queue-type": "stream"}


def stream_settings(**overrides: Any) -> Any:
    return settings(
        **{"queue_arguments": STREAM, "on_exception": Actions.REJECT, "max_retries": 1, **overrides}
    )


def stream_message(offset: int, *, channel: FakeChannel, tag: int) -> Message[Any]:
    """A delivery from a stream as the feed builds it: raw body, offset from the header."""
    message = delivered(json.dumps(offset).encode(), channel, tag, "application/json")
    return attrs.evolve(message, headers={"x-stream-offset": offset}, stream_offset=offset)


async def deliver(engine: BulkEngine, channel: FakeChannel, offsets: range, first_tag: int) -> None:
    for tag, offset in enumerate(offsets, start=first_tag):
        refusal = engine.receive(stream_message(offset, channel=channel, tag=tag))
        if refusal is not None:
            await refusal


def declare(**attributes: Any) -> type[BulkConsumer]:
    async def handle(self: Any, messages: list[Message[Any]]) -> None:
        return None

    body = {"queues": ["events"], "handle": handle, **attributes}
    return type("Reader", (BulkConsumer,), body)


READER = {"queue_arguments": STREAM, "on_exception": Actions.REJECT}


@pytest.mark.parametrize(
    ("attributes", "attribute", "words"),
    [
        ({"queue_arguments": STREAM}, "on_exception", "cannot take a message back"),
        ({**READER, "on_success": Actions.REQUEUE}, "on_success", "Actions.REJECT"),
        ({**READER, "dead_letter_queue": None}, "dead_letter_queue", "cannot reject"),
        ({**READER, "retry_delay": 5}, "retry_delay", "read by others"),
        ({**READER, "max_concurrent_bulks": 2}, "max_concurrent_bulks", "offset order"),
        ({**READER, "group_by": "customer"}, "group_by", "out of order"),
        ({**READER, "partitions": 4}, "partitions", "read by every consumer"),
        ({**READER, "stream_offset": "start"}, "stream_offset", '"first", "last", "next"'),
        ({**READER, "stream_offset": -1}, "stream_offset", "at least 0"),
        ({**READER, "stream_offset": True}, "stream_offset", "got True"),
        ({**READER, "stream_offset": "1 h"}, "stream_offset", "interval"),
        (
            {**READER, "stream_offset": datetime.datetime(2026, 1, 1)},
            "stream_offset",
            "timezone-aware",
        ),
        ({"stream_offset": "first"}, "stream_offset", "stream queues only"),
    ],
)
def test_a_stream_declaration_that_cannot_work_fails_at_class_definition(
    attributes: dict[str, Any], attribute: str, words: str
) -> None:
    """Each setting a stream rules out fails at class definition, naming class and attribute."""
    with pytest.raises(ConsumerDefinitionError) as raised:
        declare(**attributes)
    assert str(raised.value).startswith(f"Reader.{attribute} ")
    assert words in str(raised.value)


def test_a_stored_offset_hook_must_be_async_take_the_queue_and_read_a_stream() -> None:
    """stored_offset is checked like a setting: async, (self, queue), on a stream consumer."""

    def sync_hook(self: Any, queue: str) -> int:
        return 1

    async def no_queue(self: Any) -> int:
        return 1

    async def good(self: Any, queue: str) -> int:
        return 1

    cases = [(sync_hook, READER, "async def"), (no_queue, READER, "queue name"), (good, {}, "only")]
    for hook, attributes, words in cases:
        with pytest.raises(ConsumerDefinitionError, match=words) as raised:
            declare(stored_offset=hook, **attributes)
        assert str(raised.value).startswith("Reader.stored_offset ")
    assert declare(stored_offset=good, **READER).queue_arguments == STREAM


@pytest.mark.parametrize(
    "offset",
    [
        "first",
        "last",
        "next",
        0,
        17,
        "1h",
        "7D",
        datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    ],
)
def test_every_offset_rabbitmq_accepts_is_a_valid_stream_offset(offset: Any) -> None:
    """Words, offsets, aware datetimes and intervals are accepted as they are."""
    assert offset == declare(stream_offset=offset, **READER).stream_offset


async def test_start_of_reading_prefers_the_settled_position_then_the_stored_offset() -> None:
    """Reading starts after what was settled, else after the stored offset, else stream_offset."""
    stored: dict[str, int | None] = {"events": 41, "other": None}

    async def hook(queue: str) -> int | None:
        return stored[queue]

    position = StreamPosition("first", hook)
    assert {"x-stream-offset": 42} == await position.consume_arguments("events")
    assert "first" == await position.start_of("other")
    assert "next" == await StreamPosition(None).start_of("events")
    channel = FakeChannel()
    position.settled([stream_message(7, channel=channel, tag=1)])
    assert 8 == await position.start_of("test")


async def test_the_stored_offset_is_asked_for_once_and_must_be_an_offset() -> None:
    """A reconnect before any delivery reuses the first start; a hook returning junk is refused."""
    calls: list[str] = []

    async def hook(queue: str) -> Any:
        calls.append(queue)
        return {"events": 9, "junk": "9"}[queue]

    position = StreamPosition("first", hook, name="Reader")
    assert 10 == await position.start_of("events")
    assert 10 == await position.start_of("events")
    assert ["events"] == calls
    with pytest.raises(StreamStartError, match=r"^Reader.stored_offset\('junk'\) returned '9'"):
        await position.start_of("junk")
    with pytest.raises(StreamStartError, match="raised KeyError") as raised:
        await position.start_of("missing")
    assert isinstance(raised.value.__cause__, KeyError)


async def test_a_requeue_decision_on_a_stream_is_dead_lettered_never_nacked(
    clock, channel, log, publisher
) -> None:
    """message.requeue() on a stream dead-letters a copy (reason requeue-on-stream), then acks."""
    handler = Recorder()
    handler.decide = lambda messages: messages[0].requeue("try later")
    engine = build_engine(
        stream_settings(), handler, EngineConfig(clock=clock, log=log, publisher=publisher)
    )
    worker = await started(engine)
    await deliver(engine, channel, range(10, 13), first_tag=1)
    await let_run()
    await stopped(engine, worker)
    [dead] = publisher.to("test.dlq")
    assert "requeue-on-stream" == dead.headers["x-bulkworker-reason"]
    assert [] == [call for call in channel.calls if call[0] != "ack"]
    assert {1: "ack", 2: "ack", 3: "ack"} == channel.settled_tags(3)
    assert 13 == engine.stream.next_offset("test")


async def test_a_re_read_offset_that_was_settled_is_acked_for_credit_and_not_handled(
    clock, channel, log, publisher
) -> None:
    """After a reconnect the stream may deliver settled offsets again: they skip handle."""
    handler = Recorder()
    engine = build_engine(
        stream_settings(), handler, EngineConfig(clock=clock, log=log, publisher=publisher)
    )
    worker = await started(engine)
    await deliver(engine, channel, range(0, 3), first_tag=1)
    await let_run()
    again = FakeChannel("reopened")
    await deliver(engine, again, range(1, 6), first_tag=1)
    await let_run()
    await stopped(engine, worker)
    assert [[0, 1, 2], [3, 4, 5]] == handler.bulks
    assert {1: "ack", 2: "ack", 3: "ack", 4: "ack", 5: "ack"} == again.settled_tags(5)
    assert 6 == engine.stream.next_offset("test")


async def test_re_reads_that_arrive_while_their_bulk_still_runs_are_not_handled_twice(
    clock, log, publisher
) -> None:
    """A reconnect mid-bulk re-reads that bulk; once it settles, its copies are skipped."""
    handler = Recorder()
    handler.gate = asyncio.Event()
    engine = build_engine(
        stream_settings(), handler, EngineConfig(clock=clock, log=log, publisher=publisher)
    )
    worker = await started(engine)
    old, new = FakeChannel("old"), FakeChannel("reopened")
    await deliver(engine, old, range(0, 3), first_tag=1)
    await let_run()
    old.closed = True  # the connection is cut while handle runs
    engine.drop_closed()
    await deliver(engine, new, range(0, 6), first_tag=1)  # resumed from offset 0
    await let_run()
    handler.gate.set()
    await let_run()
    await stopped(engine, worker)
    assert [[0, 1, 2], [3, 4, 5]] == handler.bulks
    assert dict.fromkeys(range(1, 7), "ack") == new.settled_tags(6)
    assert 6 == engine.stream.next_offset("test")


async def test_an_outage_on_a_stream_gives_back_by_credit_and_resumes_before_them(
    clock, channel, log, publisher
) -> None:
    """The breaker acks what it gives back (no requeue on a stream); the position stays before."""
    handler = Recorder()
    handler.fail_with = ConnectionRefusedError("sink down")
    engine = build_engine(
        stream_settings(),
        handler,
        EngineConfig(clock=clock, log=log, publisher=publisher, consumer_timeout=20.0),
    )
    engine.outage.breaker.backoff.random = lambda: 0.0
    intake = FakeIntake()
    engine.outage.intake = intake
    worker = await started(engine)
    await deliver(engine, channel, range(100, 105), first_tag=1)
    await let_run()
    assert ["pause"] == intake.calls
    assert 100 == engine.stream.next_offset("test")
    await advance(clock, 11.0)  # past half the consumer timeout: the held bulk is given back
    assert [] == [call for call in channel.calls if call[0] != "ack"]
    assert dict.fromkeys(range(1, 6), "ack") == channel.settled_tags(5)
    assert 100 == engine.stream.next_offset("test")
    assert [] == publisher.published
    handler.fail_with = None
    await advance(clock, 10.0)  # the next probe consumes again, from the position
    assert "resume" == intake.calls[-1]
    worker.cancel()
    await let_run()


def test_the_stored_offset_hook_is_found_behind_an_injecting_handler() -> None:
    """Whether handle takes services or not, the engine finds the consumer's stored_offset."""

    class Reader(BulkConsumer):
        queues = ["events"]
        queue_arguments = STREAM
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]], **services: Any) -> None:
            return None

        async def stored_offset(self, queue: str) -> int | None:
            return 5

    reader = Reader()
    plain = injecting_handler(reader, [])
    injecting = injecting_handler(reader, [object()])  # type: ignore[list-item]
    assert reader.stored_offset == stored_offset_hook(plain)
    assert reader.stored_offset == stored_offset_hook(injecting)
    assert stored_offset_hook(Recorder()) is None


async def test_the_harness_numbers_a_streams_messages_after_the_stored_offset() -> None:
    """In memory, a stream consumer's messages carry offsets from stored_offset + 1."""
    stored: list[tuple[int | None, Any]] = []

    class Offsets(BulkConsumer):
        queues = ["events"]
        queue_arguments = STREAM
        on_exception = Actions.REJECT

        async def stored_offset(self, queue: str) -> int | None:
            return 41

        async def handle(self, messages: list[Message[Any]]) -> None:
            stored.extend((message.stream_offset, message.body) for message in messages)

    async with ConsumerHarness(Offsets) as harness:
        await harness.publish("a")
        await harness.publish("b")
    assert [(42, "a"), (43, "b")] == stored


def test_a_stream_consumer_with_several_workers_is_refused_at_start() -> None:
    """--workers 2 would read the stream twice: the plan refuses it, naming the consumer."""
    reader = declare(**READER)
    container = make_container()
    container.config.workers.from_value(2)
    with pytest.raises(ConsumerDefinitionError, match=r"^Reader reads a stream, .* 2 workers"):
        plan([reader], container)
    assert ("Reader",) == tuple(s.name for s in plan([reader], make_container()).settings)

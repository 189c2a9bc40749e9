"""The circuit breaker with a fake channel and clock: an outage pauses, probes, resumes."""

import asyncio
from typing import Any

import pytest

from framework import Actions, BulkConsumer, ConsumerDefinitionError, Message, SinkUnavailable
from framework.core.breaker import Backoff
from framework.core.engine import BulkEngine, EngineConfig, build_engine
from framework.core.outcome import Router, Verdict
from framework.errors import HandlerTimeoutError
from framework.testing import FakeChannel, make_message
from tests.test_engine import Recorder, arrive, feed, let_run, settings, started, stopped


class FakeIntake:
    """Records the engine pausing and resuming the broker's deliveries."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def pause(self) -> None:
        self.calls.append("pause")

    async def resume(self) -> None:
        self.calls.append("resume")


class Sink(Recorder):
    """A handler whose sink is down until told otherwise."""

    def __init__(self, error: BaseException | None = None) -> None:
        super().__init__()
        self.down = True
        self.error = error or ConnectionRefusedError("connection refused")

    async def __call__(self, messages: list[Message[Any]]) -> None:
        await super().__call__(messages)
        if self.down:
            raise self.error


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def intake() -> FakeIntake:
    return FakeIntake()


@pytest.fixture
def make_paused_engine(clock, log, publisher, intake):
    def make(handler: Any, consumer_timeout: float = 1800.0, **overrides: Any) -> BulkEngine:
        engine = build_engine(
            settings(**{"max_retries": 1, **overrides}),
            handler,
            EngineConfig(
                clock=clock, log=log, publisher=publisher, consumer_timeout=consumer_timeout
            ),
        )
        engine.outage.breaker.backoff.random = lambda: 0.0  # no jitter: exact steps
        engine.outage.intake = intake
        return engine

    return make


async def advance(clock, seconds: float, step: float = 0.5) -> None:
    """Move the fake clock in small steps, letting the engine run between them."""
    moved = 0.0
    while moved < seconds:
        clock.advance(min(step, seconds - moved))
        moved += step
        await let_run()


def settled(channel: FakeChannel) -> dict[int, str]:
    return {tag: action for action, tag, _ in channel.calls if action != "ack"} | {
        tag: "ack" for tag, action in channel.settled_tags(100).items() if action == "ack"
    }


async def test_an_outage_holds_the_bulk_and_probes_with_backoff(
    clock, channel, log, publisher, intake, sink, make_paused_engine
) -> None:
    """60 s of ConnectionError with max_retries=1: nothing dead-lettered, probes at 1, 2, 4 …"""
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert engine.paused
    assert ["pause"] == intake.calls
    assert [] == channel.calls  # held: nothing settled
    calls_at: list[float] = []
    for _ in range(120):
        calls = len(sink.bulks)
        await advance(clock, 0.5)
        if len(sink.bulks) > calls:
            calls_at.append(clock.now())
    # Probes come after 1, 2, 4, 8, 16 and 32 s: 1, 3, 7, 15, 31 and 63 s after the failure.
    assert [1.0, 3.0, 7.0, 15.0, 31.0] == calls_at
    assert [] == publisher.published
    sink.down = False
    await advance(clock, 10)
    assert not engine.paused
    assert [[1, 2, 3]] * 7 == sink.bulks
    assert [("ack", 3, True)] == channel.calls
    assert ["pause", "resume"] == intake.calls
    assert [] == publisher.published
    await stopped(engine, task)


async def test_the_waits_double_up_to_the_cap_and_jitter_only_lengthens_them() -> None:
    """1, 2, 4 … capped at outage_backoff_max; each wait is its step times 1 to 1.25."""
    backoff = Backoff(1.0, 60.0, random=lambda: 0.0)
    assert [1, 2, 4, 8, 16, 32, 60, 60] == [backoff.next_wait() for _ in range(8)]
    stretched = Backoff(1.0, 60.0, random=lambda: 0.999999)
    waits = [stretched.next_wait() for _ in range(8)]
    assert all(s <= w <= 1.25 * s for s, w in zip([1, 2, 4, 8, 16, 32, 60, 60], waits, strict=True))
    for _ in range(200):
        stretched.step()
    assert 60.0 == stretched.step()  # no overflow after hundreds of failures


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        OSError("network unreachable"),
        SinkUnavailable("database in recovery"),
    ],
)
async def test_default_outage_errors_pause_instead_of_retrying(
    clock, channel, publisher, error, make_paused_engine
) -> None:
    """ConnectionError, TimeoutError, OSError and SinkUnavailable pause: no retry or dead letter."""
    engine = make_paused_engine(Sink(error))
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert engine.paused
    assert [] == publisher.published
    assert [] == channel.calls
    await stopped(engine, task)


async def test_ordinary_errors_and_handler_timeouts_are_not_outages(
    clock, channel, publisher, make_paused_engine
) -> None:
    """A ValueError and a HandlerTimeoutError retry as before: they are the messages' fault."""
    for error in (ValueError("bad row"), HandlerTimeoutError("slow")):
        engine = make_paused_engine(Sink(error))
        task = await started(engine)
        await feed(engine, channel, 1, 3)
        await let_run()
        assert not engine.paused
        assert 3 == len(publisher.to("test"))  # retried
        publisher.published.clear()
        await stopped(engine, task)


async def test_outage_errors_can_be_chosen_per_consumer(
    clock, channel, publisher, make_paused_engine
) -> None:
    """outage_errors=(KeyError,) pauses on KeyError and retries a ConnectionError."""
    engine = make_paused_engine(Sink(KeyError("shard")), outage_errors=(KeyError,))
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert engine.paused
    await stopped(engine, task)
    engine = make_paused_engine(Sink(ConnectionError("x")), outage_errors=(KeyError,))
    task = await started(engine)
    await feed(engine, channel, 4, 6)
    await let_run()
    assert not engine.paused
    assert 3 == len(publisher.to("test"))
    await stopped(engine, task)


async def test_buffered_and_late_deliveries_are_given_back_while_paused(
    clock, channel, intake, sink, make_paused_engine
) -> None:
    """Pausing requeues what waits in the buffer and what still arrives; the bulk is held."""
    sink.gate = asyncio.Event()
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    await feed(engine, channel, 4, 5)  # buffered while the first bulk is in handle
    sink.gate.set()
    await let_run()
    assert {4: "requeue", 5: "requeue"} == settled(channel)
    await feed(engine, channel, 6, 6)  # sent before the broker took the cancel
    await let_run()
    assert "requeue" == settled(channel)[6]
    assert 0 == engine.buffered
    assert [1, 2, 3] == [m.delivery.tag for m in engine.outage.held]
    await stopped(engine, task)


async def test_messages_decided_before_the_outage_keep_their_decision(
    clock, channel, publisher, make_paused_engine
) -> None:
    """handle acks one message and then the sink fails: that one is acked, the rest held."""
    sink = Sink()
    sink.decide = lambda messages: messages[0].ack()
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert [("ack", 1, False)] == channel.calls
    assert [2, 3] == [m.delivery.tag for m in engine.outage.held]
    sink.down = False
    sink.decide = None
    await advance(clock, 2)
    assert [2, 3] == sink.bulks[-1]
    assert {1: "ack", 2: "ack", 3: "ack"} == settled(channel)
    await stopped(engine, task)


async def test_unavailable_marks_only_those_messages_for_the_probe(
    clock, channel, publisher, intake, make_paused_engine
) -> None:
    """handle returns with one message marked unavailable(): the rest acked, that one probed."""
    handler = Recorder()
    handler.decide = lambda messages: messages[1].unavailable("shard 2 is down")
    engine = make_paused_engine(handler)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    assert engine.paused
    assert {1: "ack", 3: "ack"} == settled(channel)
    handler.decide = None
    await advance(clock, 1.5)
    assert [2] == handler.bulks[-1]
    assert not engine.paused
    assert {1: "ack", 2: "ack", 3: "ack"} == settled(channel)
    assert [] == publisher.published
    await stopped(engine, task)


async def test_held_messages_are_given_back_before_the_consumer_timeout(
    clock, channel, intake, sink, make_paused_engine
) -> None:
    """consumer_timeout=20: the held bulk is requeued after 10 s; the next delivery probes."""
    engine = make_paused_engine(sink, consumer_timeout=20.0)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    await advance(clock, 10)
    assert {1: "requeue", 2: "requeue", 3: "requeue"} == settled(channel)
    assert [] == engine.outage.held
    calls = len(sink.bulks)
    await advance(clock, 8)  # the next probe is due at 15 s: nothing is held, so consume
    assert ["pause", "resume"] == intake.calls
    assert calls == len(sink.bulks)
    sink.down = False
    await feed(engine, channel, 7, 8)  # the broker's redeliveries arrive
    await let_run()
    assert [7, 8] == sink.bulks[-1]
    assert not engine.paused
    assert {7: "ack", 8: "ack"} == {t: a for t, a in settled(channel).items() if t > 6}
    await stopped(engine, task)


async def test_a_probe_failing_again_pauses_the_fresh_intake_again(
    clock, channel, intake, sink, make_paused_engine
) -> None:
    """Probing with a fresh delivery that fails: paused again, that bulk held, rest given back."""
    engine = make_paused_engine(sink, consumer_timeout=2.0)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    await advance(clock, 1.5)  # the probe at 1 s failed; the hold limit (1 s) gave them back
    await advance(clock, 2.0)  # next probe due: consume again
    assert "resume" == intake.calls[-1]
    await feed(engine, channel, 4, 4)
    await let_run()
    assert "pause" == intake.calls[-1]
    assert [4] == [m.delivery.tag for m in engine.outage.held]
    assert engine.paused
    await stopped(engine, task)


async def test_stopping_while_paused_gives_everything_back(
    clock, channel, sink, make_paused_engine
) -> None:
    """close() while the breaker is open: held messages requeued, nothing acked, run returns."""
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    calls = len(sink.bulks)
    await stopped(engine, task)
    assert {1: "requeue", 2: "requeue", 3: "requeue"} == settled(channel)
    assert calls == len(sink.bulks)


async def test_a_probe_that_fails_for_another_reason_resumes_and_retries(
    clock, channel, publisher, intake, sink, make_paused_engine
) -> None:
    """The sink answers with a bad-data error: it is up, so resume; the bulk is retried normally."""
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    sink.error = ValueError("bad row")
    await advance(clock, 1.5)
    assert not engine.paused
    assert ["pause", "resume"] == intake.calls
    assert 3 == len(publisher.to("test"))  # retry copies, attempt 1 of max_retries=1
    await stopped(engine, task)


async def test_isolating_failures_stops_at_an_outage_and_holds_the_untried(
    clock, channel, publisher, make_paused_engine
) -> None:
    """Bisecting meets the outage in the second half: the first half acked, the rest held."""

    class HalfDown(Recorder):
        async def __call__(self, messages: list[Message[Any]]) -> None:
            await super().__call__(messages)
            tags = [m.delivery.tag for m in messages]
            if tags == [1, 2, 3, 4]:
                raise ValueError("one bad row somewhere")
            if 4 in tags:
                raise ConnectionResetError("the database went away")

    handler = HalfDown()
    engine = make_paused_engine(handler, bulk_size=4, prefetch=8, isolate_failures=True)
    task = await started(engine)
    await feed(engine, channel, 1, 4)
    await let_run()
    assert engine.paused
    assert {1: "ack", 2: "ack"} == settled(channel)
    assert [3, 4] == [m.delivery.tag for m in engine.outage.held]
    assert [] == publisher.published
    await stopped(engine, task)


async def test_one_outage_pauses_every_concurrent_bulk_and_settles_each_once(
    clock, channel, publisher, intake, make_paused_engine
) -> None:
    """max_concurrent_bulks=3: one outage opens the breaker; a bulk running beside it finishes."""
    gates = {1: asyncio.Event(), 4: asyncio.Event(), 7: asyncio.Event()}
    outcome: dict[int, BaseException | None] = {1: ConnectionError("down"), 4: None, 7: OSError()}

    class Three(Recorder):
        async def __call__(self, messages: list[Message[Any]]) -> None:
            first = messages[0].delivery.tag
            self.bulks.append([m.delivery.tag for m in messages])
            await gates[first].wait()
            error = outcome[first]
            if error is not None:
                raise error

    handler = Three()
    engine = make_paused_engine(handler, max_concurrent_bulks=3, prefetch=12)
    task = await started(engine)
    await feed(engine, channel, 1, 9)
    await let_run()
    assert 3 == len(handler.bulks)
    gates[1].set()
    await let_run()
    assert engine.paused
    gates[4].set()
    gates[7].set()
    await let_run()
    assert {4: "ack", 5: "ack", 6: "ack", 7: "requeue", 8: "requeue", 9: "requeue"} == settled(
        channel
    )
    outcome[1] = None
    await advance(clock, 1.5)
    assert not engine.paused
    assert [1, 2, 3] == handler.bulks[-1]
    tags = [tag for _, tag, _ in channel.calls]
    assert sorted(set(tags)) == sorted(tags)  # none settled twice
    assert [] == publisher.published
    await stopped(engine, task)


async def test_a_probe_skips_held_messages_whose_channel_closed(
    clock, channel, sink, make_paused_engine
) -> None:
    """A reconnect while paused: the held messages are redelivered, so the probe waits for them."""
    engine = make_paused_engine(sink)
    task = await started(engine)
    await feed(engine, channel, 1, 3)
    await let_run()
    channel.closed = True
    engine.drop_closed()
    assert [] == engine.outage.held
    fresh = FakeChannel("fresh")
    sink.down = False
    await advance(clock, 1.5)
    for tag in (1, 2, 3):
        engine.receive(make_message(tag, channel=fresh, tag=tag))
    await let_run()
    assert not engine.paused
    assert [("ack", 3, True)] == fresh.calls
    await stopped(engine, task)


async def test_bad_outage_settings_fail_at_class_definition() -> None:
    """outage_errors must be exception classes; a cap below its first step is refused."""
    with pytest.raises(ConsumerDefinitionError, match=r"Sinky\.outage_errors must be a tuple"):

        class Sinky(BulkConsumer):
            queues = ["q"]
            outage_errors = ConnectionError

            async def handle(self, messages: list[Message[Any]]) -> None: ...

    with pytest.raises(ConsumerDefinitionError, match=r"Capped\.outage_backoff_max is 1"):

        class Capped(BulkConsumer):
            queues = ["q"]
            outage_backoff = 5
            outage_backoff_max = 1

            async def handle(self, messages: list[Message[Any]]) -> None: ...

    with pytest.raises(ConsumerDefinitionError, match=r"Late\.retry_backoff_max"):

        class Late(BulkConsumer):
            queues = ["q"]
            retry_delay = 10
            retry_backoff_max = 5

            async def handle(self, messages: list[Message[Any]]) -> None: ...


def test_retries_wait_twice_as_long_each_time_up_to_the_cap(channel) -> None:
    """retry_delay=2, retry_backoff_max=20: the copies expire after 2, 4, 8, 16, 20, 20 s."""
    router = Router(settings(retry_delay=2.0, retry_backoff_max=20.0, max_retries=10))
    expirations = []
    for attempts in range(6):
        message = make_message(
            1, channel=channel, tag=1, headers={"x-bulkworker-attempts": attempts}
        )
        _, [move] = router.route([Verdict(message, Actions.REQUEUE, "exception", "boom")])
        expirations.append(move.expiration)
    assert ["2000", "4000", "8000", "16000", "20000", "20000"] == expirations


async def test_with_group_by_one_keys_outage_pauses_every_key(
    clock, channel, publisher, intake, make_paused_engine
) -> None:
    """group_by: key a fails with an outage; key b's buffered messages go back; a is probed."""
    sink = Sink()
    engine = make_paused_engine(sink, group_by=lambda m: m.body["key"], bulk_size=2, prefetch=8)
    task = await started(engine)
    for tag, key in [(1, "b"), (2, "a"), (3, "a")]:
        await arrive(engine, make_message({"key": key}, channel=channel, tag=tag))
    await let_run()
    assert engine.paused
    assert {1: "requeue"} == settled(channel)
    assert [2, 3] == [m.delivery.tag for m in engine.outage.held]
    sink.down = False
    await advance(clock, 1.5)
    assert not engine.paused
    assert {1: "requeue", 2: "ack", 3: "ack"} == settled(channel)
    assert [] == publisher.published
    await stopped(engine, task)

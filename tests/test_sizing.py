"""Bulks by bytes and the adaptive bulk size, on the engine with a fake clock: no sleeps."""

import asyncio
from typing import Any

import pytest

from framework import Actions, BulkConsumer, ConsumerDefinitionError, Message
from framework.core.engine import BulkEngine, EngineConfig, build_engine
from framework.core.sizing import AdaptiveSize
from framework.core.watch import Bulk, CallOutcome, FlushReason, HandleCall, HandleEnd, Watcher
from framework.errors import HandlerTimeoutError, SinkUnavailable
from framework.testing import FakeChannel, FakeClock, make_message
from tests.test_engine import arrive, let_run, settings, started, stopped


class Bulks(Watcher):
    """Every bulk taken, for its size, bytes and flush reason."""

    def __init__(self) -> None:
        self.taken: list[Bulk] = []

    def bulk_taken(self, bulk: Bulk) -> None:
        self.taken.append(bulk)

    @property
    def reasons(self) -> list[FlushReason]:
        return [bulk.reason for bulk in self.taken]

    @property
    def sizes(self) -> list[int]:
        return [bulk.size for bulk in self.taken]


class Sink:
    """A handler that records the bodies' lengths per call and can cost fake time or fail."""

    def __init__(self, clock: FakeClock, cost: Any = None) -> None:
        self.clock = clock
        self.cost = cost or (lambda size: 0.0)
        self.calls: list[list[int]] = []
        self.fail_with: BaseException | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, messages: list[Message[Any]]) -> None:
        self.calls.append([len(m.raw) for m in messages])
        self.clock.advance(self.cost(len(messages)))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with


def engine_with(
    clock: Any, log: Any, publisher: Any, sink: Sink, handler: Any = None, **overrides: Any
):
    """An engine on ``sink`` (or on ``handler``, a wrapper around it), with its bulk watcher."""
    watcher = Bulks()
    values = {"flush_interval": 1000.0, "prefetch": 1000, **overrides}
    engine = build_engine(
        settings(**values),
        handler or sink,
        EngineConfig(clock=clock, log=log, publisher=publisher, watcher=watcher),
    )
    return engine, watcher


def sized(length: int, channel: FakeChannel, tag: int, **headers: Any) -> Message[Any]:
    """A message whose raw body is ``length`` bytes, left as bytes by the decoder."""
    message = make_message(b"x" * length, channel=channel, tag=tag, headers=headers)
    message.content_type = "application/octet-stream"
    return message


async def feed_sizes(engine: BulkEngine, channel: FakeChannel, lengths: list[int]) -> None:
    for tag, length in enumerate(lengths, start=1):
        await arrive(engine, sized(length, channel, tag))


# max_bulk_bytes


async def test_a_bulk_goes_before_the_next_body_would_pass_max_bulk_bytes(
    clock, channel, log, publisher
) -> None:
    """40-byte bodies, 100 bytes at most: bulks of two, flushed for `bytes`, the fifth waits."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100)
    task = await started(engine)
    await feed_sizes(engine, channel, [40] * 5)
    await let_run()
    assert [[40, 40], [40, 40]] == sink.calls
    assert [FlushReason.BYTES, FlushReason.BYTES] == watcher.reasons
    assert 1 == engine.buffered
    await stopped(engine, task)
    assert [[40, 40], [40, 40], [40]] == sink.calls
    assert dict.fromkeys(range(1, 6), "ack") == channel.settled_tags(5)


async def test_a_message_larger_than_max_bulk_bytes_goes_alone(
    clock, channel, log, publisher
) -> None:
    """30, 250, 30 bytes under a limit of 100: the 250 is a bulk of its own, nothing is stuck."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100)
    task = await started(engine)
    await feed_sizes(engine, channel, [30, 250, 30])
    await let_run()
    assert [[30], [250]] == sink.calls
    clock.advance(1000.0)
    await let_run()
    assert [[30], [250], [30]] == sink.calls
    assert [FlushReason.BYTES, FlushReason.BYTES, FlushReason.INTERVAL] == watcher.reasons
    await stopped(engine, task)
    assert {1: "ack", 2: "ack", 3: "ack"} == channel.settled_tags(3)


async def test_an_oversized_first_message_goes_at_once(clock, channel, log, publisher) -> None:
    """A 500-byte body into an empty buffer with a 100-byte limit is handed over immediately."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100)
    task = await started(engine)
    await feed_sizes(engine, channel, [500])
    await let_run()
    assert [[500]] == sink.calls
    assert [FlushReason.BYTES] == watcher.reasons
    await stopped(engine, task)


async def test_a_bulk_of_exactly_max_bulk_bytes_goes_without_waiting_for_the_next(
    clock, channel, log, publisher
) -> None:
    """50 + 50 bytes under a limit of 100 is full: it goes before a third message comes."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100)
    task = await started(engine)
    await feed_sizes(engine, channel, [50, 50])
    await let_run()
    assert [[50, 50]] == sink.calls
    assert [FlushReason.BYTES] == watcher.reasons
    await stopped(engine, task)


async def test_bulk_size_still_limits_when_the_bytes_are_few(
    clock, channel, log, publisher
) -> None:
    """Ten-byte bodies never reach 1,000 bytes: bulks of bulk_size=3, flushed for `size`."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=3, max_bulk_bytes=1000)
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 6)
    await let_run()
    assert [[10] * 3, [10] * 3] == sink.calls
    assert [FlushReason.SIZE, FlushReason.SIZE] == watcher.reasons
    await stopped(engine, task)


async def test_a_backlog_is_cut_by_bytes_bulk_after_bulk(clock, channel, log, publisher) -> None:
    """While one bulk is handled the rest queue up; each next bulk is cut by bytes again."""
    sink = Sink(clock)
    sink.gate = asyncio.Event()
    engine, _ = engine_with(clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100)
    task = await started(engine)
    await feed_sizes(engine, channel, [60, 30, 30, 90, 10, 10, 200, 5])
    await let_run()
    sink.gate.set()
    await let_run()
    await stopped(engine, task)
    assert [[60, 30], [30], [90, 10], [10], [200], [5]] == sink.calls
    assert all(sum(call) <= 100 or len(call) == 1 for call in sink.calls)


async def test_each_group_by_key_counts_its_own_bytes(clock, channel, log, publisher) -> None:
    """a's 60 + 60 would pass 100 and a goes alone; b's 30 + 30 keeps waiting."""
    sink = Sink(clock)
    engine, watcher = engine_with(
        clock, log, publisher, sink, bulk_size=10, max_bulk_bytes=100, group_by="key"
    )
    task = await started(engine)
    for tag, (key, length) in enumerate([("a", 60), ("b", 30), ("b", 30), ("a", 60)], start=1):
        await arrive(engine, sized(length, channel, tag, key=key))
    await let_run()
    assert [[60]] == sink.calls
    assert [FlushReason.BYTES] == watcher.reasons
    await stopped(engine, task)
    assert [[60], [30, 30], [60]] == sorted(sink.calls[:1]) + sorted(sink.calls[1:])


async def test_byte_bulks_run_side_by_side_with_max_concurrent_bulks(
    clock, channel, log, publisher
) -> None:
    """Two bulks cut by bytes are handled at once; all six messages are acked after."""
    sink = Sink(clock)
    sink.gate = asyncio.Event()
    running: list[int] = []

    async def watched(messages: list[Message[Any]]) -> None:
        running.append(len(messages))
        await sink(messages)

    engine, _ = engine_with(
        clock,
        log,
        publisher,
        sink,
        handler=watched,  # notes each start, then writes to the sink
        bulk_size=10,
        max_bulk_bytes=100,
        max_concurrent_bulks=2,
    )
    task = await started(engine)
    await feed_sizes(engine, channel, [50] * 6)
    await let_run()
    assert [2, 2] == running  # both started before either ended
    sink.gate.set()
    await let_run()
    await stopped(engine, task)
    assert [[50, 50]] * 3 == sink.calls
    assert dict.fromkeys(range(1, 7), "ack") == channel.settled_tags(6)


async def test_empty_bodies_never_fill_a_byte_limit_but_bulk_size_still_cuts(
    clock, channel, log, publisher
) -> None:
    """Zero-byte bodies under a 10-byte limit: bulks of bulk_size=3, flushed for `size`."""
    sink = Sink(clock)
    engine, watcher = engine_with(clock, log, publisher, sink, bulk_size=3, max_bulk_bytes=10)
    task = await started(engine)
    await feed_sizes(engine, channel, [0] * 6)
    await let_run()
    assert [[0, 0, 0], [0, 0, 0]] == sink.calls
    assert [FlushReason.SIZE, FlushReason.SIZE] == watcher.reasons
    await stopped(engine, task)


async def test_a_handler_that_empties_its_list_changes_nothing_that_is_settled(
    clock, channel, log, publisher
) -> None:
    """handle clears the list it got: the bulk still counts its bytes, every message is acked."""
    seen: list[int] = []

    async def clearing(messages: list[Message[Any]]) -> None:
        seen.append(sum(len(m.raw) for m in messages))
        messages.clear()

    engine, watcher = engine_with(
        clock, log, publisher, Sink(clock), handler=clearing, max_bulk_bytes=100
    )
    task = await started(engine)
    await feed_sizes(engine, channel, [60, 30, 20])
    await let_run()
    await stopped(engine, task)
    assert [90, 20] == seen
    assert [90, 20] == [bulk.bytes for bulk in watcher.taken]
    assert dict.fromkeys(range(1, 4), "ack") == channel.settled_tags(3)


@pytest.mark.parametrize("value", [0, -1, 1.5, "5MB", True])
def test_max_bulk_bytes_is_checked_at_class_definition(value: Any) -> None:
    """Only a whole number of at least 1, or None: named with class and attribute."""
    with pytest.raises(ConsumerDefinitionError, match=r"Big\.max_bulk_bytes must be a whole"):

        class Big(BulkConsumer):
            queues = ["big"]
            max_bulk_bytes = value

            async def handle(self, messages: list[Message[Any]]) -> None: ...


# adaptive_bulk_size


def superlinear(size: int) -> float:
    """1 s per call, 0.01 s per message squared: the time per message is lowest at 10."""
    return 1.0 + 0.01 * size * size


async def run_backlog(engine: BulkEngine, channel: FakeChannel, messages: int) -> None:
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * messages)
    await let_run()
    await stopped(engine, task)


async def test_adaptive_size_starts_at_the_minimum_and_settles_where_time_per_message_is_lowest(
    clock, channel, log, publisher
) -> None:
    """From 2 by steps of 2 up to 12, then it circles 8, 10, 12 around the best; never above 34."""
    sink = Sink(clock, superlinear)
    engine, watcher = engine_with(
        clock, log, publisher, sink, bulk_size=34, adaptive_bulk_size=True, bulk_size_min=2
    )
    await run_backlog(engine, channel, 160)
    sizes = watcher.sizes
    assert [2, 4, 6, 8, 10, 12, 10, 8, 10, 12, 10, 8] == sizes[:12]
    assert {8, 10, 12} == set(sizes[3:-1])  # the last one holds what the shutdown found
    assert dict.fromkeys(range(1, 161), "ack") == channel.settled_tags(160)


async def test_adaptive_size_grows_to_bulk_size_and_no_further(
    clock, channel, log, publisher
) -> None:
    """A sink with only a fixed cost per call: the size climbs from 4 to 20 and stays there."""
    sink = Sink(clock, lambda size: 1.0)
    engine, watcher = engine_with(
        clock, log, publisher, sink, bulk_size=20, adaptive_bulk_size=True, bulk_size_min=4
    )
    await run_backlog(engine, channel, 300)
    assert [4, 5, 6, 7, 8] == watcher.sizes[:5]  # steps of (20 - 4) // 16 = 1
    assert 20 == max(watcher.sizes)
    assert 20 == engine.bulk_size_target


async def test_failures_halve_the_size_down_to_the_minimum_and_no_further(
    clock, channel, log, publisher
) -> None:
    """At 64, four failed bulks make it 32, 16, 8, 8: never under bulk_size_min=8."""
    sink = Sink(clock, lambda size: 1.0)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=64,
        adaptive_bulk_size=True,
        bulk_size_min=8,
        on_exception=Actions.REJECT,
    )
    assert engine.adaptive_size is not None
    engine.adaptive_size.target = 64
    sink.fail_with = ValueError("bad gateway")
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * (64 + 32 + 16 + 8))
    await let_run()
    assert [64, 32, 16, 8] == watcher.sizes
    assert 8 == engine.bulk_size_target
    sink.fail_with = None
    await feed_sizes(engine, channel, [10] * 8)
    await let_run()
    assert 11 == engine.bulk_size_target  # a success grows it again by one step, (64-8)//16
    await stopped(engine, task)


async def test_a_bulk_slower_than_the_latency_target_halves_the_size(
    clock, channel, log, publisher
) -> None:
    """bulk_latency_target=2 s: bulks of 2, 4, 6 take up to 1.4 s; 8 takes 2.3 s and it halves."""
    sink = Sink(clock, lambda size: 1.0 + 0.02 * size * size)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=34,
        adaptive_bulk_size=True,
        bulk_size_min=2,
        bulk_latency_target=2.0,
    )
    await run_backlog(engine, channel, 60)
    assert [2, 4, 6, 8, 4, 6, 8, 4] == watcher.sizes[:8]


async def test_a_handle_that_never_returns_times_out_and_halves_the_size(
    clock, channel, log, publisher
) -> None:
    """handler_timeout cancels a stuck handle: its bulk is settled and the size halves, 16 to 8."""

    async def stuck(messages: list[Message[Any]]) -> None:
        await asyncio.Event().wait()

    engine = build_engine(
        settings(
            bulk_size=16,
            prefetch=100,
            flush_interval=1000.0,
            adaptive_bulk_size=True,
            handler_timeout=0.01,
            on_exception=Actions.REJECT,
        ),
        stuck,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    assert engine.adaptive_size is not None
    engine.adaptive_size.target = 16
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 16)
    await wait_for_target(engine, 8)
    engine.close()
    await asyncio.wait_for(task, 5)
    assert 16 == len(publisher.published)  # every message dead-lettered, none lost


async def wait_for_target(engine: BulkEngine, target: int) -> None:
    for _ in range(200):
        if target == engine.bulk_size_target:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the target stayed {engine.bulk_size_target}, not {target}")


async def test_an_outage_leaves_the_size_where_it_was(clock, channel, log, publisher) -> None:
    """handle raising ConnectionError pauses the consumer; the target is not halved."""
    sink = Sink(clock, lambda size: 1.0)
    engine, _ = engine_with(
        clock, log, publisher, sink, bulk_size=64, adaptive_bulk_size=True, bulk_size_min=8
    )
    assert engine.adaptive_size is not None
    engine.adaptive_size.target = 32
    sink.fail_with = ConnectionError("sink down")
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 32)
    await let_run()
    assert engine.paused
    assert 32 == engine.bulk_size_target
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_partial_bulks_never_grow_the_size(clock, channel, log, publisher) -> None:
    """Bulks flushed by the interval say nothing of bigger ones: the target stays at 5."""
    sink = Sink(clock, lambda size: 0.1)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=50,
        adaptive_bulk_size=True,
        bulk_size_min=5,
        flush_interval=1.0,
    )
    task = await started(engine)
    for _round_number in range(4):
        await feed_sizes(engine, channel, [10, 10])
        clock.advance(1.0)
        await let_run()
    await stopped(engine, task)
    assert [FlushReason.INTERVAL] * 4 == watcher.reasons
    assert 5 == engine.bulk_size_target


async def test_a_shrinking_target_recuts_the_backlog(clock, channel, log, publisher) -> None:
    """After a failure at 16 the waiting backlog goes in bulks of 8, not 16."""
    sink = Sink(clock, lambda size: 1.0)
    sink.gate = asyncio.Event()
    sink.fail_with = ValueError("no")
    original = sink.__call__

    async def fail_once(messages: list[Message[Any]]) -> None:
        try:
            await original(messages)
        finally:
            sink.fail_with = None

    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        handler=fail_once,
        bulk_size=16,
        adaptive_bulk_size=True,
        bulk_size_min=1,
        on_exception=Actions.REJECT,
    )
    assert engine.adaptive_size is not None
    engine.adaptive_size.target = 16
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 32)
    await let_run()
    sink.gate.set()
    await let_run()
    await stopped(engine, task)
    assert [16, 8, 8] == watcher.sizes[:3]


async def test_isolating_failures_halves_once_per_bulk(clock, channel, log, publisher) -> None:
    """One poison message in a bulk of 16: the halves run again, the size halves once, to 8."""
    poison = 7

    async def handle(messages: list[Message[Any]]) -> None:
        if any(m.delivery.tag == poison for m in messages):
            raise ValueError("poison")

    engine = build_engine(
        settings(
            bulk_size=16,
            prefetch=100,
            flush_interval=1000.0,
            adaptive_bulk_size=True,
            isolate_failures=True,
            on_exception=Actions.REJECT,
        ),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    assert engine.adaptive_size is not None
    engine.adaptive_size.target = 16
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 16)
    await let_run()
    assert 8 == engine.bulk_size_target
    await stopped(engine, task)
    assert [("test.dlq", [7])] == [
        (key, [move.message.delivery.tag]) for key, _, move in publisher.published
    ]


async def test_min_equal_to_bulk_size_keeps_the_size_fixed(clock, channel, log, publisher) -> None:
    """bulk_size_min == bulk_size: nothing to adapt, through successes and failures alike."""
    sink = Sink(clock, superlinear)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=5,
        adaptive_bulk_size=True,
        bulk_size_min=5,
        on_exception=Actions.REJECT,
    )
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 10)
    await let_run()
    sink.fail_with = ValueError("no")
    await feed_sizes(engine, channel, [10] * 10)
    await let_run()
    await stopped(engine, task)
    assert [5, 5, 5, 5] == watcher.sizes


async def test_the_flush_interval_still_applies_in_adaptive_mode(
    clock, channel, log, publisher
) -> None:
    """Three messages under a target of 4 go when the first has waited flush_interval."""
    sink = Sink(clock)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=40,
        adaptive_bulk_size=True,
        bulk_size_min=4,
        flush_interval=5.0,
    )
    task = await started(engine)
    await feed_sizes(engine, channel, [10] * 3)
    clock.advance(4.9)
    await let_run()
    assert [] == sink.calls
    clock.advance(0.1)
    await let_run()
    assert [[10, 10, 10]] == sink.calls
    assert [FlushReason.INTERVAL] == watcher.reasons
    await stopped(engine, task)


async def test_bytes_and_adaptive_size_together_cut_at_whichever_comes_first(
    clock, channel, log, publisher
) -> None:
    """Target 4 but 100 bytes at most: 40 + 40 stop before a 30; 30 + 10 * 3 is four."""
    sink = Sink(clock)
    engine, watcher = engine_with(
        clock,
        log,
        publisher,
        sink,
        bulk_size=40,
        adaptive_bulk_size=True,
        bulk_size_min=4,
        max_bulk_bytes=100,
    )
    task = await started(engine)
    await feed_sizes(engine, channel, [40, 40, 30, 10, 10, 10, 10])
    await let_run()
    await stopped(engine, task)
    assert [[40, 40], [30, 10, 10, 10], [10]] == sink.calls
    assert [FlushReason.BYTES, FlushReason.SIZE, FlushReason.SHUTDOWN] == watcher.reasons


# The controller alone: pure, one call's end at a time.


def ended(
    size: int, seconds: float, *, error: BaseException | None = None, reason: str = "size"
) -> HandleEnd:
    channel = FakeChannel()
    messages = [make_message(n, channel=channel, tag=n) for n in range(1, size + 1)]
    bulk = Bulk("Test", messages, FlushReason(reason), 0.0)
    outcome = CallOutcome.SUCCESS if error is None else CallOutcome.ERROR
    if isinstance(error, HandlerTimeoutError):
        outcome = CallOutcome.TIMEOUT
    return HandleEnd(HandleCall(bulk, messages), outcome, seconds, error)


def test_a_timeout_halves_even_when_timeouts_count_as_outages() -> None:
    """HandlerTimeoutError is the plainest sign of a bulk too big: halved, outage or not."""
    sizer = AdaptiveSize(10, 100, is_outage=lambda error: True)
    sizer.target = 80
    assert 40 == sizer.target_after(ended(80, 30.0, error=HandlerTimeoutError("slow")))


def test_outages_and_exit_requests_do_not_move_the_size() -> None:
    """SinkUnavailable, a CancelledError or SystemExit from handle say nothing of latency."""
    sizer = AdaptiveSize(10, 100, is_outage=lambda error: isinstance(error, SinkUnavailable))
    sizer.target = 80
    for error in (SinkUnavailable("down"), asyncio.CancelledError(), SystemExit(0)):
        assert 80 == sizer.target_after(ended(80, 1.0, error=error))


def test_a_failure_streak_halves_to_the_floor_and_one_success_climbs_one_step() -> None:
    """100 → 50 → 25 → 12 → 10 → 10 on failures; a success then takes it to 15."""
    sizer = AdaptiveSize(10, 100)
    sizer.target = 100
    targets = [sizer.target_after(ended(10, 1.0, error=ValueError())) for _ in range(5)]
    assert [50, 25, 12, 10, 10] == targets
    assert 15 == sizer.target_after(ended(10, 1.0))  # step (100 - 10) // 16 = 5


def test_a_rising_time_per_message_turns_the_size_round_one_step_at_a_time() -> None:
    """0.1 s a message at 20, 0.2 s at 25: back to 20, on down while it falls, up when it rises."""
    sizer = AdaptiveSize(10, 100)
    sizer.target = 20
    assert 25 == sizer.target_after(ended(20, 2.0))
    assert 20 == sizer.target_after(ended(25, 5.0))  # rose: turn round, not halved
    assert 15 == sizer.target_after(ended(20, 2.0))  # fell: go on down
    assert 20 == sizer.target_after(ended(15, 3.0))  # rose: turn round again
    assert (2, 2) == (sizer.grown, sizer.shrunk)


def test_only_bulks_the_target_filled_move_it_up() -> None:
    """A bulk cut by bytes or by the interval leaves the target; a full one grows it."""
    sizer = AdaptiveSize(10, 100)
    for reason in ("bytes", "interval", "pressure", "shutdown", "forced", "probe"):
        assert 10 == sizer.target_after(ended(3, 0.1, reason=reason))
    assert 15 == sizer.target_after(ended(10, 0.1))


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"bulk_size_min": 5}, r"Sized\.bulk_size_min has no effect unless adaptive_bulk_size"),
        (
            {"bulk_latency_target": 1.0},
            r"Sized\.bulk_latency_target has no effect unless adaptive_bulk_size",
        ),
        (
            {"adaptive_bulk_size": True, "bulk_size_min": 11},
            r"Sized\.bulk_size_min is 11, above bulk_size=10",
        ),
        ({"adaptive_bulk_size": True, "bulk_size_min": 0}, r"Sized\.bulk_size_min must be"),
        ({"adaptive_bulk_size": "yes"}, r"Sized\.adaptive_bulk_size must be True or False"),
        (
            {"adaptive_bulk_size": True, "bulk_latency_target": 0},
            r"Sized\.bulk_latency_target must be a number of seconds above 0",
        ),
    ],
)
def test_adaptive_settings_are_checked_at_class_definition(
    attributes: dict[str, Any], problem: str
) -> None:
    """Meaningless or contradictory adaptive settings fail when the class is defined."""
    with pytest.raises(ConsumerDefinitionError, match=problem):
        type(
            "Sized",
            (BulkConsumer,),
            {"queues": ["sized"], "bulk_size": 10, "handle": handle_nothing, **attributes},
        )


async def handle_nothing(self: Any, messages: list[Message[Any]]) -> None:
    """A handle that stores nothing."""

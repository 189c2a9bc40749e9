"""Every delivery accounted for: a property over random interleavings, and the real broker.

The property drives the engine with arrivals (decodable or not), decisions,
failing bulks, lists changed inside ``handle``, failing copies and channels that
close, noticed or not, in random order, and checks every frame the channel gets.
"""

import asyncio
import contextlib
import json
from typing import Any

import aiormq
import attrs
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework import Actions, BulkConsumer, ConsumerSettings, Container, Message, Orchestrator
from framework.core.engine import EngineConfig, build_engine
from framework.core.message import Delivery
from framework.testing import FakeChannel, FakeClock, FakePublisher, RecordingLog
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import make_container

DEEP = b"[" * 100000 + b"]" * 100000


class AuditedChannel(FakeChannel):
    """A channel that fails the test at the first frame settling an undecided or settled tag."""

    def __init__(self, name: str, decided: set[tuple[str, int]]) -> None:
        super().__init__(name)
        self.decided = decided
        self.settled: dict[int, int] = {}
        self.arrived: list[int] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        covered = (
            [tag for tag in self.arrived if tag <= delivery_tag and tag not in self.settled]
            if multiple
            else [delivery_tag]
        )
        await super().basic_ack(delivery_tag, multiple, wait)
        self._audit(covered)

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        await super().basic_reject(delivery_tag, requeue=requeue, wait=wait)
        self._audit([delivery_tag])

    def _audit(self, tags: list[int]) -> None:
        for tag in tags:
            assert (self.name, tag) in self.decided, f"{self.name} tag {tag} settled undecided"
            assert tag not in self.settled, f"{self.name} tag {tag} settled twice"
            self.settled[tag] = 1


@attrs.frozen
class Plan:
    """What the handler does with one message: its decision, and whether its bulk raises."""

    decision: str | None
    fails: bool
    meddle: str | None


plans = st.builds(
    Plan,
    decision=st.sampled_from([None, "ack", "requeue", "reject"]),
    fails=st.sampled_from([False, False, False, True]),
    meddle=st.sampled_from([None, None, "clear", "pop", "append"]),
)
steps = st.lists(
    st.one_of(
        plans.map(lambda plan: ("arrive", plan)),
        st.just(("arrive-undecodable", None)),
        st.sampled_from([("close", True), ("close", False), ("tick", None), ("run", None)]),
        st.sampled_from([("hold", "handler"), ("hold", "publisher"), ("release", None)]),
        st.just(("publisher", True)) | st.just(("publisher", False)),
    ),
    max_size=40,
)
configs = st.fixed_dictionaries(
    {
        "bulk_size": st.integers(1, 4),
        "isolate_failures": st.booleans(),
        "on_exception": st.sampled_from([Actions.REQUEUE, Actions.REJECT]),
        "max_retries": st.sampled_from([None, 2]),
        "dead_letter_queue": st.sampled_from(["{queue}.dlq", None]),
    }
)


class World:
    """One run: the engine, its channels (one open at a time) and what was decided."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.decided: set[tuple[str, int]] = set()
        self.channels = [AuditedChannel("c0", self.decided)]
        self.clock = FakeClock()
        self.publisher = FakePublisher()
        self.plans: dict[int, Plan] = {}
        self.handler_gate = asyncio.Event()
        self.handler_gate.set()
        self.engine = build_engine(
            ConsumerSettings(
                name="Prop",
                queues=("q",),
                flush_interval=1.0,
                prefetch=100,
                on_success=Actions.ACK,
                declare=True,
                queue_arguments={},
                **config,
            ),
            self.handle,
            EngineConfig(clock=self.clock, log=RecordingLog(), publisher=self.publisher),
        )

    async def handle(self, messages: list[Message[Any]]) -> None:
        owned = list(messages)
        try:
            for message in owned:
                plan = self.plans[id(message)]
                if plan.decision is not None:
                    getattr(message, plan.decision)()
                meddle(messages, plan.meddle)
            await self.handler_gate.wait()  # a held handle: channels may close meanwhile
            if any(self.plans[id(message)].fails for message in owned):
                raise RuntimeError("planned failure")
        finally:
            for message in owned:
                self.decided.add((message.delivery.channel.name, message.delivery.tag))  # type: ignore[attr-defined]

    async def arrive(self, plan: Plan | None) -> None:
        channel = self.channels[-1]
        tag = len(channel.arrived) + 1
        channel.arrived.append(tag)
        raw = DEEP if plan is None else json.dumps(tag).encode()
        message = Message(
            body=raw,
            raw=raw,
            queue="q",
            routing_key="q",
            delivery=Delivery(channel, tag),
            content_type="application/json",
        )
        if plan is None:
            self.decided.add((channel.name, tag))  # undecodable: decided on arrival
        else:
            self.plans[id(message)] = plan
        refusal = self.engine.receive(message)
        if refusal is not None:
            await refusal

    def hold(self, what: str | None) -> None:
        """Hold ``handle`` or the copies' confirms; None releases both."""
        if what == "handler":
            self.handler_gate.clear()
        elif what == "publisher":
            if self.publisher.gate is None or self.publisher.gate.is_set():
                self.publisher.gate = asyncio.Event()
        else:
            self.handler_gate.set()
            if self.publisher.gate is not None:
                self.publisher.gate.set()

    def close(self, noticed: bool) -> None:
        self.channels[-1].closed = True
        self.channels.append(AuditedChannel(f"c{len(self.channels)}", self.decided))
        if noticed:
            self.engine.drop_closed()


def meddle(messages: list[Message[Any]], how: str | None) -> None:
    if how == "clear":
        messages.clear()
    elif how == "pop" and messages:
        messages.pop(0)
    elif how == "append" and messages:
        messages.append(messages[0])


async def let_run() -> None:
    for _ in range(100):
        await asyncio.sleep(0)


async def play(config: dict[str, Any], script: list[tuple[str, Any]]) -> World:
    world = World(config)
    worker = asyncio.create_task(world.engine.run())
    for step, argument in script:
        if step == "arrive":
            await world.arrive(argument)
        elif step == "arrive-undecodable":
            await world.arrive(None)
        elif step == "close":
            world.close(argument)
        elif step == "tick":
            world.clock.advance(1.0)
        elif step == "publisher":
            world.publisher.fail_with = ConnectionError("down") if argument else None
        else:
            world.hold(step == "hold" and argument)
        await let_run()
    world.hold(None)
    world.publisher.fail_with = None  # the broker takes copies again: held moves go through
    world.engine.close()
    for _ in range(100):
        if worker.done():
            break
        world.clock.advance(30.0)  # past the longest pause before a held move is tried again
        await let_run()
    await asyncio.wait_for(worker, 5)
    await world.engine.finish_moves()
    return world


@settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(config=configs, script=steps)
def test_no_tag_is_settled_undecided_or_twice_and_every_open_one_is_settled(
    config: dict[str, Any], script: list[tuple[str, Any]]
) -> None:
    """Random arrivals, decisions, failures and closed channels: each open tag settled once."""
    world = asyncio.run(play(config, script))
    for channel in world.channels:
        if not channel.closed:
            assert dict.fromkeys(channel.arrived, 1) == channel.settled


async def test_deep_body_is_dead_lettered_and_the_good_ones_acked_on_the_broker(
    broker: Broker, container: Container
) -> None:
    """good-1, a body nested 100,000 deep (JSON type, then none), good-2, good-3: none lost."""
    queue = broker.queue_name("deep")
    await broker.declare(queue)
    raw_connection = await aiormq.connect(AMQP_URL)
    raw_channel = await raw_connection.channel()
    bodies = [b'"good-1"', DEEP, DEEP, b'"good-2"', b'"good-3"']
    types = ["application/json", "application/json", None, "application/json", None]
    for number, (body, content_type) in enumerate(zip(bodies, types, strict=True)):
        await raw_channel.basic_publish(
            body,
            routing_key=queue,
            properties=aiormq.spec.Basic.Properties(
                content_type=content_type, message_id=str(number)
            ),
        )
    await raw_connection.close()
    handled: list[Any] = []

    class Deep(BulkConsumer):
        queues = [queue]
        bulk_size = 3
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body for m in messages)

    async with Orchestrator([Deep], container):
        await wait_until(lambda: len(handled) == 3)
        await wait_until(lambda: has_ready(broker, f"{queue}.dlq", 2))
    assert ["good-1", "good-2", "good-3"] == handled
    dead = await broker.drain(f"{queue}.dlq")
    assert [("1", DEEP), ("2", DEEP)] == [(m.message_id, m.body) for m in dead]
    assert {"undecodable"} == {m.headers["x-bulkworker-reason"] for m in dead}
    assert all("nested too deeply" in str(m.headers["x-bulkworker-error"]) for m in dead)
    # The connection is closed: anything left unacked would be back in the queue.
    assert 0 == await broker.ready_count(queue)


async def has_ready(broker: Broker, queue: str, count: int) -> bool:
    return count == await broker.ready_count(queue)


async def test_handle_changing_its_list_settles_each_message_once_on_the_broker(
    broker: Broker,
) -> None:
    """clear, pop(0), append(messages[0]) in handle: all acked once, the channel stays open."""
    queue = broker.queue_name("meddling")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(9))
    container = make_container()
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    handled: list[int] = []
    changes = iter([meddle_clear, meddle_pop, meddle_append])

    class Meddling(BulkConsumer):
        queues = [queue]
        bulk_size = 3
        prefetch = 3  # one bulk at a time: each change meets its own bulk
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)
            next(changes)(messages)

    async with Orchestrator([Meddling], container):
        await wait_until(lambda: len(handled) >= 9)
        await asyncio.sleep(0.5)  # room for a redelivery, had a tag been acked twice
        assert 0 == await broker.ready_count(queue)
    assert list(range(9)) == sorted(handled)
    assert [] == [m for m in log.messages("warning") if "channel" in m]
    assert 0 == await broker.ready_count(queue)


def meddle_clear(messages: list[Message[Any]]) -> None:
    messages.clear()


def meddle_pop(messages: list[Message[Any]]) -> None:
    messages.pop(0)


def meddle_append(messages: list[Message[Any]]) -> None:
    messages.append(messages[0])


async def test_cancelled_error_from_handle_fails_the_bulk_and_consuming_goes_on(
    broker: Broker,
) -> None:
    """raise CancelledError() in handle: that bulk is dead-lettered, later messages handled."""
    queue = broker.queue_name("cancelled")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(2))
    container = make_container()
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    handled: list[int] = []

    class Cancelling(BulkConsumer):
        queues = [queue]
        bulk_size = 2
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            if not handled:
                handled.append(-1)
                raise asyncio.CancelledError()
            handled.extend(m.body["id"] for m in messages)

    async with Orchestrator([Cancelling], container):
        await wait_until(lambda: has_ready(broker, f"{queue}.dlq", 2))
        await broker.publish_ids(queue, range(2, 4))
        await wait_until(lambda: handled[1:] == [2, 3])
    dead = await broker.drain(f"{queue}.dlq")
    assert ["0", "1"] == [m.message_id for m in dead]
    assert {"CancelledError"} == {str(m.headers["x-bulkworker-error"]) for m in dead}
    [extra] = [extra for _, msg, extra in log.records if msg == "handle raised"]
    assert ("Cancelling", 2, "CancelledError") == (
        extra["consumer"],
        extra["bulk_size"],
        extra["exception"],
    )
    assert 0 == await broker.ready_count(queue)


async def test_handler_timeout_abandons_a_handle_that_swallows_cancellation_on_the_broker(
    broker: Broker,
) -> None:
    """A handle ignoring cancellation past handler_timeout: bulk dead-lettered, others flow."""
    queue = broker.queue_name("swallow")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(1))
    container = make_container()
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    handled: list[int] = []
    release = asyncio.Event()

    class Stubborn(BulkConsumer):
        queues = [queue]
        bulk_size = 1
        handler_timeout = 0.2
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)
            while messages[0].body["id"] == 0 and not release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await release.wait()

    try:
        async with Orchestrator([Stubborn], container):
            await wait_until(lambda: has_ready(broker, f"{queue}.dlq", 1), timeout=10)
            await broker.publish_ids(queue, range(1, 3))
            await wait_until(lambda: handled == [0, 1, 2], timeout=10)
    finally:
        release.set()
    [dead] = await broker.drain(f"{queue}.dlq")
    assert "HandlerTimeoutError" in str(dead.headers["x-bulkworker-error"])
    assert any(m.startswith("handle ignored cancellation") for m in log.messages("error"))
    assert 0 == await broker.ready_count(queue)

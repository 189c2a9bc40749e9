"""The harness in memory: handlers publish into a recording publisher, nothing connects."""

import datetime
import time
from typing import Any

import attrs
import pytest
from dependency_injector.wiring import Provide

from framework import Actions, BulkConsumer, Message, Publisher, UnroutableError
from framework.testing import ConsumerHarness, RecordingPublisher
from tests.conftest import make_container

CLOSED_PORT_URL = "amqp://guest:guest@127.0.0.1:1/"


@attrs.frozen
class Stored:
    count: int
    at: datetime.datetime


class Announcing(BulkConsumer):
    queues = ["announcing"]
    bulk_size = 3
    max_retries = 2

    async def handle(
        self,
        messages: list[Message[Any]],
        publisher: Publisher = Provide["publisher"],
        connection: Any = Provide["connection"],
    ) -> None:
        channel = await connection.channel()
        await channel.declare_queue("stored", durable=True)
        at = datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC)
        await publisher.publish(Stored(len(messages), at), routing_key="stored")
        await publisher.publish_many([m.body for m in messages], routing_key="announcing.copy")


async def test_a_handler_that_publishes_never_touches_a_broker() -> None:
    """No broker answers at the configured URL; the test still finishes well under a second."""
    container = make_container(CLOSED_PORT_URL)
    started = time.monotonic()
    async with ConsumerHarness(Announcing, container=container) as harness:
        harness.publisher.allow("announcing.copy")
        await harness.publish_many([{"n": 1}, {"n": 2}, {"n": 3}])
    assert time.monotonic() - started < 1.0
    assert [{"count": 3, "at": "2026-11-28T00:00:00+00:00"}] == harness.publisher.to("stored")
    assert [{"n": 1}, {"n": 2}, {"n": 3}] == harness.publisher.to("announcing.copy")
    assert [{"n": 1}, {"n": 2}, {"n": 3}] == harness.acked
    first = harness.published[0]
    assert ("stored", "", "application/json", True) == (
        first.routing_key,
        first.exchange,
        first.content_type,
        first.persistent,
    )


async def test_publishing_where_nothing_is_bound_raises_like_rabbitmq() -> None:
    """An unknown routing key is UnroutableError, a ConnectionError: the consumer pauses."""
    async with ConsumerHarness(Announcing) as harness:
        await harness.publish_many([{"n": 1}, {"n": 2}, {"n": 3}])
        await harness.drain()
        assert harness.paused
        assert [] == harness.acked
        assert [] == harness.dead_lettered
        harness.publisher.allow("announcing.copy")
        await harness.advance(2)
        assert not harness.paused
    assert [{"n": 1}, {"n": 2}, {"n": 3}] == harness.acked


async def test_mandatory_false_drops_the_unroutable_as_rabbitmq_would() -> None:
    """With mandatory=False nothing is raised and nothing is recorded."""
    publisher = RecordingPublisher()
    await publisher.publish({"a": 1}, routing_key="nowhere", mandatory=False)
    assert [] == publisher.messages
    with pytest.raises(UnroutableError, match="routing key 'nowhere'"):
        await publisher.publish({"a": 1}, routing_key="nowhere")
    publisher.allow(exchange="events")
    assert 2 == await publisher.publish_many([1, 2], routing_key="any.key", exchange="events")
    assert [1, 2] == publisher.to("any.key", exchange="events")


class Flaky(BulkConsumer):
    queues = ["flaky"]
    bulk_size = 10
    flush_interval = 5.0
    max_retries = 3
    retry_delay = 60.0
    on_exception = Actions.REQUEUE
    isolate_failures = True

    async def handle(self, messages: list[Message[Any]]) -> None:
        if any(m.body["fail"] for m in messages):
            raise RuntimeError("sink down")


async def test_drain_runs_retries_to_their_end_on_the_harness_clock() -> None:
    """Three retries a minute apart and the flush interval pass on the clock, not in real time."""
    started = time.monotonic()
    async with ConsumerHarness(Flaky) as harness:
        await harness.publish({"fail": True})
        await harness.publish({"fail": False}, queue="flaky")
        await harness.drain()
        assert harness.clock.now() >= 180.0
    assert time.monotonic() - started < 2.0
    assert [{"fail": False}] == harness.acked
    assert [{"fail": True}] == [d.body for d in harness.dead_lettered]
    assert "retries-exhausted" == harness.dead_lettered[0].reason


async def test_a_user_publisher_override_does_not_swallow_the_harness_input_on_a_broker() -> None:
    """broker=True with `publisher` overridden: the harness's own messages still arrive."""
    recording = RecordingPublisher()
    recording.allow("stored")
    recording.allow("announcing.copy")
    overrides = {"publisher": recording}
    async with ConsumerHarness(Announcing, overrides=overrides, broker=True) as harness:
        await harness.publish_many([{"n": 1}, {"n": 2}, {"n": 3}])
        await harness.flush()
    assert [{"n": 1}, {"n": 2}, {"n": 3}] == harness.acked
    assert [{"n": 1}, {"n": 2}, {"n": 3}] == recording.to("announcing.copy")

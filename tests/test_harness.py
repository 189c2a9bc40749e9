"""The test harness: consumers run through the real engine with no broker, or with one."""

from typing import Any

import attrs
import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide

from framework import Actions, BulkConsumer, Container, Message
from framework.testing import ConsumerHarness


class Store:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    async def save(self, rows: list[Any]) -> None:
        self.rows.extend(rows)


class ShopContainer(Container):
    store = providers.Singleton(Store)


class Orders(BulkConsumer):
    queues = ["orders"]
    bulk_size = 3
    flush_interval = 10.0
    max_retries = 1

    async def handle(self, messages: list[Message[Any]], store: Store = Provide["store"]) -> None:
        for message in messages:
            if message.body.get("bad"):
                message.reject()
            if message.body.get("flaky") and message.attempts == 0:
                message.requeue()
        await store.save([m.body for m in messages if m.decision is None])


async def test_full_bulk_runs_at_once_and_partial_on_flush() -> None:
    """Three messages make a bulk at once; the fourth waits for flush()."""
    fake = Store()
    async with ConsumerHarness(Orders, container=ShopContainer(), overrides={"store": fake}) as h:
        await h.publish_many([{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}])
        assert [[{"n": 1}, {"n": 2}, {"n": 3}]] == h.bulks
        await h.flush()
    assert [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}] == fake.rows
    assert [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}] == h.acked


async def test_the_clock_moves_only_when_told() -> None:
    """A partial bulk waits for flush_interval on the harness clock, not real time."""
    async with ConsumerHarness(Orders, container=ShopContainer()) as h:
        await h.publish({"n": 1})
        await h.advance(9.9)
        assert [] == h.bulks
        await h.advance(0.1)
        assert [[{"n": 1}]] == h.bulks


async def test_outcomes_say_what_became_of_each_message() -> None:
    """Dead letters carry their reason; retries come back by themselves."""
    async with ConsumerHarness(Orders, container=ShopContainer()) as h:
        await h.publish_many([{"n": 1, "bad": True}, {"n": 2, "flaky": True}, {"n": 3}])
        await h.flush()
    [dead] = h.dead_lettered
    assert ({"n": 1, "bad": True}, "rejected", "orders.dlq") == (
        dead.body,
        dead.reason,
        dead.destination,
    )
    assert [{"n": 2, "flaky": True}] == h.requeued
    assert [{"n": 3}, {"n": 2, "flaky": True}] == h.acked


async def test_overrides_are_restored_afterwards() -> None:
    """An override lasts for the harness only."""
    container = ShopContainer()
    fake = Store()
    async with ConsumerHarness(Orders, container=container, overrides={"store": fake}):
        assert fake is container.store()
    assert fake is not container.store()


async def test_unknown_override_is_an_error() -> None:
    """Overriding a provider the container lacks fails loudly."""
    with pytest.raises(KeyError, match="no provider 'stroe'"):
        async with ConsumerHarness(Orders, container=ShopContainer(), overrides={"stroe": 1}):
            pass


async def test_a_failed_start_leaves_no_override_behind() -> None:
    """One good override and one unknown: the error, and the container as it was."""
    container = ShopContainer()
    fake = Store()
    harness = ConsumerHarness(Orders, container=container, overrides={"store": fake, "stroe": 1})
    assert {"store": fake, "stroe": 1} == harness.overrides
    with pytest.raises(KeyError, match="no provider 'stroe'"):
        async with harness:
            pass
    assert fake is not container.store()
    assert not container.publisher.overridden


async def test_exceptions_are_retried_then_dead_lettered() -> None:
    """A handler that always raises: one retry, then the dead-letter queue, with the error."""

    class Broken(BulkConsumer):
        queues = ["broken"]
        max_retries = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise RuntimeError("database is down")

    async with ConsumerHarness(Broken) as h:
        await h.publish({"n": 1})
    assert [[{"n": 1}], [{"n": 1}]] == h.bulks
    [dead] = h.dead_lettered
    assert ("retries-exhausted", "RuntimeError: database is down") == (dead.reason, dead.error)


async def test_retry_delay_runs_on_the_harness_clock() -> None:
    """A retry with retry_delay comes back when the clock has moved that far."""

    class Later(BulkConsumer):
        queues = ["later"]
        retry_delay = 60.0
        on_exception = Actions.REQUEUE

        async def handle(self, messages: list[Message[Any]]) -> None:
            if messages[0].attempts == 0:
                raise RuntimeError("not yet")

    async with ConsumerHarness(Later) as h:
        await h.publish({"n": 1})
        await h.advance(59)
        assert 1 == len(h.bulks)
        await h.advance(1)
        assert 2 == len(h.bulks)
        assert [{"n": 1}] == h.acked


@attrs.frozen
class Item:
    sku: str
    price: float


class Typed(BulkConsumer):
    queues = ["typed"]
    model = Item
    bulk_size = 2

    async def handle(self, messages: list[Message[Item]]) -> None:
        for message in messages:
            assert isinstance(message.body, Item)


async def test_a_body_that_does_not_fit_the_model_is_dead_lettered_alone() -> None:
    """Validation errors name the field; the rest of the bulk goes on."""
    async with ConsumerHarness(Typed) as h:
        await h.publish_many([{"sku": "a", "price": 1}, {"sku": "b"}, {"sku": "c", "price": "x"}])
        await h.flush()
    assert [Item("a", 1.0)] == [body for bulk in h.bulks for body in bulk][:1]
    reasons = [(d.reason, d.error) for d in h.dead_lettered]
    assert [
        ("invalid", "does not fit Item: required field missing @ $.price"),
        ("invalid", 'does not fit Item: expected a number, got a string ("x") @ $.price'),
    ] == reasons
    assert [Item("a", 1.0)] == h.acked


@pytest.mark.broker
async def test_the_same_test_runs_against_rabbitmq() -> None:
    """broker=True runs the consumer through the Orchestrator on queues of its own."""
    from tests.broker import AMQP_URL

    fake = Store()
    async with ConsumerHarness(
        Orders, container=ShopContainer(), overrides={"store": fake}, broker=AMQP_URL
    ) as h:
        assert h.queue.startswith("orders.harness-")
        await h.publish_many([{"n": 1, "bad": True}, {"n": 2, "flaky": True}, {"n": 3}])
        await h.flush()
    assert [{"n": 3}, {"n": 2, "flaky": True}] == sorted(h.acked, key=lambda b: b["n"] != 3)
    assert [("rejected", f"{h.queue}.dlq")] == [(d.reason, d.destination) for d in h.dead_lettered]
    assert [{"n": 2, "flaky": True}] == h.requeued


async def test_the_pytest_fixture_builds_harnesses(consumer_harness: Any) -> None:
    """The plugin's consumer_harness fixture gives an in-memory harness by default."""
    async with consumer_harness(Orders, container=ShopContainer()) as h:
        await h.publish_many([{"n": 1}, {"n": 2}, {"n": 3}])
        assert not h.real
        assert [{"n": 1}, {"n": 2}, {"n": 3}] == h.acked


async def test_an_override_on_the_default_container_names_it_and_the_container_argument() -> None:
    """Without container=, the error says the default container was used and how to pass one."""
    with pytest.raises(KeyError) as raised:
        async with ConsumerHarness(Orders, overrides={"pg_pool": object()}):
            pass
    message = str(raised.value)
    assert "no provider 'pg_pool' to override" in message
    assert "the default container, framework.wiring.container.Container" in message
    assert "ConsumerHarness(..., container=YourContainer(), overrides={'pg_pool': ...})" in message


async def test_an_unknown_override_on_your_container_suggests_the_close_name() -> None:
    """A typo in an override names the container and the provider it probably meant."""
    with pytest.raises(KeyError, match=r"\(ShopContainer\) has no provider 'stroe'.*'store'\?"):
        async with ConsumerHarness(Orders, container=ShopContainer(), overrides={"stroe": 1}):
            pass

"""Partitioned consumers without a broker: settings, keys, routes, one bulk per key at a time."""

import asyncio
from typing import Any

import attrs
import pytest

from framework import BulkConsumer, ConsumerDefinitionError, ConsumerSettings, Message
from framework.core.engine import EngineConfig, build_engine
from framework.core.partitions import key_reader, outgoing_message, partition_route
from framework.errors import PartitionKeyError
from framework.testing import make_message
from tests.test_engine import arrive, let_run, settings, started, stopped


class Orders(BulkConsumer):
    queues = ["orders"]
    partitions = 4
    partition_key = "body.customer.id"

    async def handle(self, messages: list[Message[Any]]) -> None: ...


def test_partitions_consume_one_queue_per_partition_with_a_single_active_consumer() -> None:
    """partitions = 4 on "orders": orders.p0 … orders.p3 consumed, each single-active."""
    found = ConsumerSettings.of(Orders)
    assert ("orders.p0", "orders.p1", "orders.p2", "orders.p3") == found.queues
    assert ("orders",) == found.exchanges
    assert {"x-single-active-consumer": True} == dict(found.queue_arguments)


def test_each_partition_queue_has_its_own_retry_and_dead_letter_queue() -> None:
    """A retry of orders.p2 waits in orders.p2.retry and goes back to orders.p2."""

    class Retried(Orders):
        retry_delay = 1.0
        queue_arguments = {"x-queue-type": "quorum"}

    declared = {d.name: d for d in ConsumerSettings.of(Retried).declarations()}
    assert {"x-queue-type": "quorum", "x-single-active-consumer": True} == dict(
        declared["orders.p2"].arguments
    )
    assert "orders.p2" == declared["orders.p2.retry"].arguments["x-dead-letter-routing-key"]
    assert "dead-letter queue" == declared["orders.p2.dlq"].role
    assert 12 == len(declared)


def test_without_partitions_the_queues_are_consumed_as_named() -> None:
    """partitions = None (the default): no exchange, the queues themselves."""

    class Plain(BulkConsumer):
        queues = ["orders"]

        async def handle(self, messages: list[Message[Any]]) -> None: ...

    found = ConsumerSettings.of(Plain)
    assert (("orders",), ()) == (found.queues, found.exchanges)
    assert {} == dict(found.queue_arguments)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"partitions": 0}, "Bad.partitions must be a whole number of at least 1, got 0"),
        ({"partitions": True}, "Bad.partitions must be a whole number of at least 1, got True"),
        ({"partition_key": "customer"}, "Bad.partition_key must say where the key is"),
        ({"partition_key": "body."}, "Bad.partition_key must say where the key is"),
        ({"partition_key": "body.a..b"}, "Bad.partition_key must say where the key is"),
        ({"partition_key": 7}, "Bad.partition_key must be 'headers.<name>'"),
        (
            {"partitions": None, "partition_key": "headers.customer"},
            "Bad.partition_key is set but partitions is None",
        ),
        (
            {"queue_arguments": {"x-single-active-consumer": False}},
            "Bad.queue_arguments sets x-single-active-consumer to False",
        ),
        (
            {"max_concurrent_bulks": 3},
            "Bad.max_concurrent_bulks is 3 with partitions = 2 and no group_by",
        ),
    ],
)
def test_bad_partition_settings_fail_when_the_class_is_defined(
    attributes: dict[str, Any], expected: str
) -> None:
    """Each mistake names the class and the attribute, before anything runs."""
    body = {"queues": ["q"], "partitions": 2, **attributes}

    async def handle(self: Any, messages: list[Message[Any]]) -> None: ...

    with pytest.raises(ConsumerDefinitionError) as raised:
        type("Bad", (BulkConsumer,), {**body, "handle": handle})
    assert str(raised.value).startswith(expected)


def test_concurrent_bulks_with_group_by_are_allowed_with_partitions() -> None:
    """max_concurrent_bulks > 1 is fine once bulks are grouped by the key."""

    class Concurrent(Orders):
        max_concurrent_bulks = 4
        group_by = "customer"

    assert 4 == ConsumerSettings.of(Concurrent).max_concurrent_bulks


@attrs.frozen
class Customer:
    id: int


@attrs.frozen
class Order:
    customer: Customer


@pytest.mark.parametrize(
    ("partition_key", "body", "headers", "expected"),
    [
        ("headers.x-customer", {}, {"x-customer": "c-7"}, "c-7"),
        ("headers.x-customer", {}, {"x-customer": 7}, "7"),
        ("body.customer.id", {"customer": {"id": 42}}, {}, "42"),
        ("body.customer.id", Order(Customer(42)), {}, "42"),
        (lambda message: message.body["k"].upper(), {"k": "ab"}, {}, "AB"),
    ],
)
def test_a_partition_key_reads_a_header_a_body_field_or_calls_a_function(
    partition_key: Any, body: Any, headers: dict[str, Any], expected: str
) -> None:
    """Headers, dotted body fields (dicts or attributes) and functions all give a text key."""
    assert expected == key_reader(partition_key)(outgoing_message(body, headers, "orders"))


@pytest.mark.parametrize(
    ("partition_key", "body", "headers", "expected"),
    [
        ("headers.x-customer", {}, {}, "the message has no header 'x-customer'"),
        ("body.customer.id", {"customer": {}}, {}, "no field 'customer.id'"),
        ("body.customer.id", {"customer": {"id": None}}, {}, "is None"),
        ("body.customer", {"customer": "x" * 300}, {}, "longer than 255 bytes"),
    ],
)
def test_a_message_without_a_usable_key_is_refused(
    partition_key: Any, body: Any, headers: dict[str, Any], expected: str
) -> None:
    """A missing field, a None key or a key too long for a routing key: PartitionKeyError."""
    with pytest.raises(PartitionKeyError, match=expected):
        key_reader(partition_key)(outgoing_message(body, headers, "orders"))


def test_the_route_is_the_queue_named_exchange_and_the_key() -> None:
    """Orders' messages go to exchange "orders" with the customer id as routing key."""
    assert ("orders", "42") == partition_route(Orders, {"customer": {"id": 42}}, {}, None, None)
    assert ("orders", "given") == partition_route(Orders, {}, {}, "given", None)


def test_routes_that_cannot_be_found_say_why() -> None:
    """Not partitioned, no key, several queues without one named: each a PartitionKeyError."""

    class Plain(BulkConsumer):
        queues = ["a", "b"]

        async def handle(self, messages: list[Message[Any]]) -> None: ...

    class Keyless(Orders):
        queues = ["a", "b"]
        partition_key = None

    with pytest.raises(PartitionKeyError, match="Plain is not partitioned"):
        partition_route(Plain, {}, {}, "k", None)
    with pytest.raises(PartitionKeyError, match=r"Keyless\.partition_key is None: pass key="):
        partition_route(Keyless, {}, {}, None, "a")
    with pytest.raises(PartitionKeyError, match="Keyless consumes a, b: pass queue="):
        partition_route(Keyless, {}, {}, "k", None)
    with pytest.raises(PartitionKeyError, match=r"Orders\.partition_key: the message body has no"):
        partition_route(Orders, {"id": 1}, {}, None, None)


class Gate:
    """A handler whose calls wait until the test opens them, recording what ran at once."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.running: list[str] = []
        self.most_at_once: dict[str, int] = {}
        self.handled: list[list[Any]] = []

    async def __call__(self, messages: list[Message[Any]]) -> None:
        key = messages[0].headers["customer"]
        self.running.append(key)
        self.most_at_once[key] = max(self.most_at_once.get(key, 0), self.running.count(key))
        await self.open.wait()
        self.running.remove(key)
        self.handled.append([m.body for m in messages])


def customer_message(tag: int, customer: str, channel: Any) -> Message[Any]:
    return make_message(
        f"{customer}{tag}", channel=channel, tag=tag, headers={"customer": customer}
    )


async def test_a_key_with_a_bulk_in_flight_waits_while_other_keys_run(
    clock, channel, log, publisher
) -> None:
    """Three slots, a's bulk running: a's next full bulk waits, b's starts beside it."""
    gate = Gate()
    engine = build_engine(
        settings(group_by="customer", bulk_size=2, prefetch=100, max_concurrent_bulks=3),
        gate,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag, customer in enumerate("aaaabb", start=1):
        await arrive(engine, customer_message(tag, customer, channel))
    await let_run()
    assert ["a", "b"] == gate.running
    assert 2 == engine.buffered  # a3, a4: their turn comes when a1, a2 are settled
    gate.open.set()
    await let_run()
    assert [["a1", "a2"], ["b5", "b6"], ["a3", "a4"]] == gate.handled
    await stopped(engine, task)
    assert {"a": 1, "b": 1} == gate.most_at_once


async def test_pressure_flushes_a_key_that_is_not_waiting(clock, channel, log, publisher) -> None:
    """Prefetch full while a's bulk runs: b's partial bulk goes, not a's (which must wait)."""
    gate = Gate()
    engine = build_engine(
        settings(group_by="customer", bulk_size=2, prefetch=4, max_concurrent_bulks=2),
        gate,
        EngineConfig(clock=clock, log=log, publisher=publisher),
    )
    task = await started(engine)
    for tag, customer in enumerate("aaaaab", start=1):
        await arrive(engine, customer_message(tag, customer, channel))
    await let_run()
    assert ["a", "b"] == gate.running
    gate.open.set()
    await let_run()
    await stopped(engine, task)
    assert [["a1", "a2"], ["b6"], ["a3", "a4"], ["a5"]] == gate.handled


async def test_every_key_keeps_its_order_under_random_durations(channel, log, publisher) -> None:
    """Four slots, 5 keys, random handle times: each key's messages handled in arrival order."""
    import random

    from framework.testing import FakeClock

    chance = random.Random(7)
    seen: dict[str, list[int]] = {}
    at_once: dict[str, int] = {}

    async def handle(messages: list[Message[Any]]) -> None:
        key = messages[0].headers["customer"]
        at_once[key] = at_once.get(key, 0) + 1
        assert 1 == at_once[key], f"two bulks of {key} at once"
        await asyncio.sleep(chance.random() * 0.002)
        seen.setdefault(key, []).extend(m.body for m in messages)
        at_once[key] -= 1

    engine = build_engine(
        settings(group_by="customer", bulk_size=3, prefetch=10_000, max_concurrent_bulks=4),
        handle,
        EngineConfig(clock=FakeClock(), log=log, publisher=publisher),
    )
    task = asyncio.create_task(engine.run())
    for tag in range(1, 501):
        key = "abcde"[chance.randrange(5)]
        await arrive(engine, make_message(tag, channel=channel, tag=tag, headers={"customer": key}))
        if chance.random() < 0.2:
            await asyncio.sleep(0.001)
    engine.close()
    await asyncio.wait_for(task, 10)
    assert all(numbers == sorted(numbers) for numbers in seen.values())
    assert 500 == sum(map(len, seen.values()))


def test_a_partition_key_function_that_raises_is_named_in_the_error() -> None:
    """A user's function raising KeyError: PartitionKeyError naming the class and the error."""

    class Raising(Orders):
        @staticmethod
        def partition_key(message: Message[Any]) -> str:
            return str(message.body["customer"])

    with pytest.raises(PartitionKeyError, match=r"Raising\.partition_key raised KeyError"):
        partition_route(Raising, {"client": 1}, {}, None, None)

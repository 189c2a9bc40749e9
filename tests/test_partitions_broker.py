"""Partitioned consumers on RabbitMQ: exchange and queues, routing, retries, start errors."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from framework import BulkConsumer, Message, Orchestrator
from framework.amqp.connection import connect
from framework.amqp.publisher import Publisher
from framework.errors import BrokerPluginError, QueueError
from framework.testing import RecordingLog
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded
from tests.partitioned import delete_exchange, enable_hash_exchange_plugin, partitioned_name
from tests.private_broker import PrivateBroker
from tests.test_cli import run_cli

pytestmark = pytest.mark.broker


@pytest.fixture
async def partitioned(broker: Broker) -> AsyncIterator[Broker]:
    """The shared broker with the plugin enabled; exchanges named by the test are deleted."""
    await enable_hash_exchange_plugin()
    broker.exchanges = []  # type: ignore[attr-defined]
    yield broker
    for exchange in broker.exchanges:  # type: ignore[attr-defined]
        await delete_exchange(broker, exchange)


def exchange_of(broker: Broker, label: str, partitions: int) -> str:
    queue = partitioned_name(broker, label, partitions)
    broker.exchanges.append(queue)  # type: ignore[attr-defined]
    return queue


@pytest.fixture
async def publisher(url: str = AMQP_URL) -> AsyncIterator[Publisher]:
    connection = await connect(url, RecordingLog(), purpose="test")
    publisher = Publisher(connection)
    await publisher.open()
    yield publisher
    await publisher.close()
    await connection.close()


def partitioned_consumer(queue: str, seen: list[Message[Any]], **attributes: Any) -> type:
    async def handle(self: Any, messages: list[Message[Any]]) -> None:
        for message in messages:
            if message.body.get("fail_once") and message.attempts == 0:
                message.requeue("first try fails")
        seen.extend(messages)

    body = {
        "queues": [queue],
        "partitions": 4,
        "partition_key": "body.customer",
        "bulk_size": 10,
        "flush_interval": 0.2,
        **attributes,
        "handle": handle,
    }
    return type("Orders", (BulkConsumer,), body)


async def test_keys_are_spread_over_partitions_each_in_order(
    partitioned: Broker, publisher: Publisher
) -> None:
    """12 keys x 30: each key stays in one partition queue, in order; every queue single-active."""
    queue = exchange_of(partitioned, "partitions", 4)
    seen: list[Message[Any]] = []
    consumer = partitioned_consumer(queue, seen)
    container, _ = recorded()
    async with Orchestrator([consumer], container):
        for number in range(30):
            for customer in range(12):
                body = {"customer": f"c{customer}", "n": number}
                await publisher.publish_partitioned(consumer, body)
        await wait_until(lambda: 360 == len(seen), timeout=30)
        for partition in range(4):
            assert 1 == await partitioned.consumer_count(f"{queue}.p{partition}")
    by_key: dict[str, list[int]] = {}
    queues: dict[str, set[str]] = {}
    for message in seen:
        by_key.setdefault(message.body["customer"], []).append(message.body["n"])
        queues.setdefault(message.body["customer"], set()).add(message.queue)
    assert {f"c{c}": list(range(30)) for c in range(12)} == by_key
    assert all(1 == len(found) for found in queues.values())
    assert len(set().union(*queues.values())) > 1  # 12 keys do not all hash to one queue
    for partition in range(4):
        assert 0 == await partitioned.ready_count(f"{queue}.p{partition}")


async def test_a_delayed_retry_comes_back_to_its_own_partition_queue(
    partitioned: Broker, publisher: Publisher
) -> None:
    """retry_delay: the retry waits in <queue>.pN.retry and is handled again from <queue>.pN."""
    queue = exchange_of(partitioned, "partition-retry", 4)
    seen: list[Message[Any]] = []
    consumer = partitioned_consumer(queue, seen, retry_delay=0.2)
    container, _ = recorded()
    async with Orchestrator([consumer], container):
        await publisher.publish_partitioned(consumer, {"customer": "c1", "fail_once": True})
        await wait_until(lambda: 2 == len(seen), timeout=15)
    first, again = seen
    assert (first.queue, 1) == (again.queue, again.attempts)
    assert first.routing_key != again.routing_key  # it came back through the retry queue
    assert 0 == await partitioned.ready_count(f"{first.queue}.retry")


async def test_another_number_of_partitions_than_declared_is_a_start_error(
    partitioned: Broker,
) -> None:
    """Declared with 4, started with 3 or 6: the start fails, saying N is fixed, and how to."""
    queue = exchange_of(partitioned, "partition-count", 6)
    seen: list[Message[Any]] = []
    container, _ = recorded()
    async with Orchestrator([partitioned_consumer(queue, seen)], container):
        pass
    for partitions in (3, 6):
        container, _ = recorded()
        consumer = partitioned_consumer(queue, seen, partitions=partitions)
        with pytest.raises(QueueError) as raised:
            async with Orchestrator([consumer], container):
                pass
        assert (
            f"Orders.partitions is {partitions}, but the broker has 4 partition queues of '{queue}'"
        ) in str(raised.value)
        assert "fixed once declared" in str(raised.value)
    assert 0 == await partitioned.ready_count(f"{queue}.p4")  # nothing was added


async def test_a_ring_declared_with_fewer_partitions_is_a_start_error(
    partitioned: Broker,
) -> None:
    """p0..p2 left from a 3-partition consumer, started with 4: refused, nothing added."""
    queue = exchange_of(partitioned, "partition-prefix", 4)
    for partition in range(3):
        await partitioned.declare(f"{queue}.p{partition}", **{"x-single-active-consumer": True})
    container, _ = recorded()
    with pytest.raises(QueueError, match=r"has 3 partition queues .*p0, …, .*\.p2\)"):
        async with Orchestrator([partitioned_consumer(queue, [])], container):
            pass
    assert 0 == await partitioned.consumer_count(f"{queue}.p0")
    assert not await queue_exists_on(partitioned, f"{queue}.p3")


async def test_a_ring_another_worker_is_declaring_is_completed(partitioned: Broker) -> None:
    """The last partition and p0 exist (another worker is midway): the start declares the rest."""
    queue = exchange_of(partitioned, "partition-midway", 4)
    for partition in (3, 0):
        await partitioned.declare(f"{queue}.p{partition}", **{"x-single-active-consumer": True})
    container, _ = recorded()
    async with Orchestrator([partitioned_consumer(queue, [])], container):
        counts = [await partitioned.consumer_count(f"{queue}.p{p}") for p in range(4)]
    assert [1, 1, 1, 1] == counts


async def test_workers_starting_side_by_side_all_start(partitioned: Broker) -> None:
    """Five consumers of one new ring started at once: none takes the others' half-declared
    ring for another number of partitions."""
    for attempt in range(3):
        queue = exchange_of(partitioned, f"partition-side-by-side-{attempt}", 8)
        orchestrators = [
            Orchestrator([partitioned_consumer(queue, [], partitions=8)], recorded()[0])
            for _ in range(5)
        ]
        async with contextlib.AsyncExitStack() as stack:
            await asyncio.gather(*(stack.enter_async_context(o) for o in orchestrators))
            counts = [await partitioned.consumer_count(f"{queue}.p{p}") for p in range(8)]
        assert [5] * 8 == counts, attempt


async def queue_exists_on(broker: Broker, queue: str) -> bool:
    channel = await broker.connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
    except Exception:
        return False
    await channel.close()
    return True


async def test_publishing_without_a_key_sends_nothing(
    partitioned: Broker, publisher: Publisher
) -> None:
    """A body without the partition_key's field: PartitionKeyError, the queues stay empty."""
    from framework.errors import PartitionKeyError

    queue = exchange_of(partitioned, "partition-nokey", 4)
    consumer = partitioned_consumer(queue, [])
    container, _ = recorded()
    async with Orchestrator([consumer], container):
        with pytest.raises(
            PartitionKeyError, match=r"Orders\.partition_key: .* no field 'customer'"
        ):
            await publisher.publish_partitioned(consumer, {"client": "c1"})
    assert [0, 0, 0, 0] == [await partitioned.ready_count(f"{queue}.p{p}") for p in range(4)]


async def test_check_shows_the_exchange_and_its_partitions(partitioned: Broker) -> None:
    """`bulkworker check`: the exchange with its partition count, then each partition queue."""
    queue = exchange_of(partitioned, "partition-check", 2)
    container, _ = recorded()
    async with Orchestrator([partitioned_consumer(queue, [], partitions=2)], container):
        pass
    result = await asyncio.to_thread(
        run_cli, "check", "tests.apps.partitioned", TEST_QUEUE=queue, TEST_PARTITIONS="2"
    )
    assert 0 == result.returncode, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [queue, "consistent-hash", "exchange", "ok"] == rows[2][1:5]
    assert {f"{queue}.p0", f"{queue}.p1"} <= {row[1] for row in rows[2:] if len(row) > 1}


@pytest.fixture
async def bare_node(private_broker: PrivateBroker) -> str:
    """The private node, which runs with no plugin at all."""
    return private_broker.url


async def test_without_the_plugin_the_start_fails_saying_how_to_enable_it(bare_node: str) -> None:
    """No rabbitmq_consistent_hash_exchange: the start fails naming the consumer and the command."""
    cleanup = await Broker.connect(bare_node)
    queue = partitioned_name(cleanup, "partition-plugin", 2)
    container, _ = recorded(bare_node)
    with pytest.raises(BrokerPluginError) as raised:
        async with Orchestrator([partitioned_consumer(queue, [], partitions=2)], container):
            pass
    assert str(raised.value).startswith("Orders has partitions = 2, but exchange")
    assert "unknown exchange type 'x-consistent-hash'" in str(raised.value)
    assert str(raised.value).endswith("rabbitmq-plugins enable rabbitmq_consistent_hash_exchange")
    with contextlib.suppress(Exception):
        await cleanup.close()


async def test_without_the_plugin_check_says_how_to_enable_it(bare_node: str) -> None:
    """`bulkworker check` on a node without the plugin: a problem row and exit 1."""
    result = await asyncio.to_thread(
        run_cli,
        "check",
        "tests.apps.partitioned",
        BULKWORKER_AMQP_URL=bare_node,
        TEST_QUEUE="bulkworker.test.partition-check-plugin",
    )
    assert 1 == result.returncode
    row = next(line for line in result.stdout.splitlines() if "consistent-hash exchange" in line)
    assert ["plugin", "missing", "-", "-", "the"] == row.split()[4:9]
    assert row.endswith("rabbitmq-plugins enable rabbitmq_consistent_hash_exchange")
    assert "bulkworker: error: 1 of 9 queues is not in order" == result.stderr.strip()


async def test_an_exchange_of_another_type_is_a_start_error_and_a_check_problem(
    partitioned: Broker,
) -> None:
    """A direct exchange under the queue's name: the start fails saying so; check: differs."""
    queue = exchange_of(partitioned, "partition-direct", 2)
    await partitioned.channel.declare_exchange(queue, "direct", durable=True)
    container, _ = recorded()
    with pytest.raises(QueueError) as raised:
        async with Orchestrator([partitioned_consumer(queue, [], partitions=2)], container):
            pass
    assert f"exchange '{queue}' exists with another type than x-consistent-hash" in str(
        raised.value
    )
    result = await asyncio.to_thread(
        run_cli, "check", "tests.apps.partitioned", TEST_QUEUE=queue, TEST_PARTITIONS="2"
    )
    assert 1 == result.returncode
    row = next(line for line in result.stdout.splitlines() if "consistent-hash exchange" in line)
    assert "differs" == row.split()[4]


async def test_check_warns_of_a_queue_named_like_the_exchange(partitioned: Broker) -> None:
    """A plain queue left from before partitioning: check warns its messages are never consumed."""
    queue = exchange_of(partitioned, "partition-leftover", 2)
    partitioned.names.append(queue)
    await partitioned.declare(queue)
    container, _ = recorded()
    async with Orchestrator([partitioned_consumer(queue, [], partitions=2)], container):
        pass
    result = await asyncio.to_thread(
        run_cli, "check", "tests.apps.partitioned", TEST_QUEUE=queue, TEST_PARTITIONS="2"
    )
    assert 0 == result.returncode, result.stderr
    row = next(line for line in result.stdout.splitlines() if "consistent-hash exchange" in line)
    assert "warning" == row.split()[4]
    assert f"a queue named '{queue}' exists too" in row


@pytest.mark.parametrize("on_broker", [False, True])
async def test_the_harness_runs_a_partitioned_consumer_in_memory_and_on_the_broker(
    partitioned: Broker, on_broker: bool
) -> None:
    """ConsumerHarness: published by key (to the exchange on RabbitMQ), each handled, all acked."""
    from framework.testing import ConsumerHarness

    seen: list[Message[Any]] = []
    consumer = partitioned_consumer("harness-orders", seen, partitions=2)
    async with ConsumerHarness(consumer, broker=on_broker) as harness:
        for number in range(6):
            await harness.publish({"customer": f"c{number % 3}", "n": number})
        await harness.drain()
    assert list(range(6)) == sorted(message.body["n"] for message in seen)
    assert 6 == len(harness.acked)


async def test_partition_queues_may_be_quorum_queues(
    partitioned: Broker, publisher: Publisher
) -> None:
    """Quorum partition queues work single-active; a reject goes to <queue>.pN.dlq."""
    queue = exchange_of(partitioned, "partition-quorum", 2)
    seen: list[Message[Any]] = []

    class Quorum(BulkConsumer):
        queues = [queue]
        partitions = 2
        partition_key = "headers.customer"
        queue_arguments = {"x-queue-type": "quorum"}
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            for message in messages:
                if message.body.get("bad"):
                    message.reject(reason="bad")
            seen.extend(messages)

    container, _ = recorded()
    async with Orchestrator([Quorum], container):
        for number in range(10):
            body = {"n": number, "bad": number == 3}
            await publisher.publish_partitioned(Quorum, body, headers={"customer": f"c{number}"})
        await wait_until(lambda: 10 == len(seen), timeout=20)
    rejected = next(message for message in seen if message.body["bad"])
    dead = await partitioned.drain(f"{rejected.queue}.dlq")
    assert [3] == [json.loads(message.body)["n"] for message in dead]


async def test_a_stopping_worker_hands_its_partition_over_without_breaking_the_order(
    partitioned: Broker, publisher: Publisher
) -> None:
    """A stops mid-stream, B standing by: A finishes its bulks, B goes on after them, in order."""
    queue = exchange_of(partitioned, "partition-handover", 1)
    handled: list[tuple[str, int]] = []

    def worker(name: str, seconds: float) -> type:
        async def handle(self: Any, messages: list[Message[Any]]) -> None:
            await asyncio.sleep(seconds)
            handled.extend((name, message.body["n"]) for message in messages)

        return type(
            name,
            (BulkConsumer,),
            {
                "queues": [queue],
                "partitions": 1,
                "partition_key": "body.key",
                "bulk_size": 10,
                "flush_interval": 0.1,
                "handle": handle,
            },
        )

    first = Orchestrator([worker("A", 0.1)], recorded()[0])  # slower: B would overtake it
    await first.start()
    async with Orchestrator([worker("B", 0.005)], recorded()[0]):
        await wait_until(lambda: partitioned.consumer_count(f"{queue}.p0"), timeout=10)
        bodies = [{"key": "k", "n": n} for n in range(300)]
        await publisher.publish_many(bodies, routing_key="k", exchange=queue)
        await wait_until(lambda: len(handled) >= 30, timeout=20)
        await first.stop()
        await wait_until(lambda: len(handled) >= 300, timeout=30)
    assert list(range(300)) == [n for _, n in handled]
    names = [name for name, _ in handled]
    assert "B" == names[-1]
    assert sorted(names) == names  # all of A's, then all of B's


async def test_a_worker_whose_sink_is_down_hands_its_partition_to_one_standing_by(
    partitioned: Broker, publisher: Publisher
) -> None:
    """A's sink is down: A closes its channel, B standing by handles everything, in order."""
    queue = exchange_of(partitioned, "partition-outage", 1)
    handled: list[int] = []

    class Down(BulkConsumer):
        queues = [queue]
        partitions = 1
        partition_key = "body.key"
        bulk_size = 10
        flush_interval = 0.1
        outage_backoff = 30.0  # no probe during the test

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise ConnectionError("sink down")

    class Up(Down):
        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(message.body["n"] for message in messages)

    async with Orchestrator([Down], recorded()[0]) as first, Orchestrator([Up], recorded()[0]):
        await wait_until(lambda: _equals(partitioned.consumer_count(f"{queue}.p0"), 2))
        bodies = [{"key": "k", "n": n} for n in range(100)]
        await publisher.publish_many(bodies, routing_key="k", exchange=queue)
        await wait_until(lambda: len(handled) >= 100, timeout=20)
        assert first.runners[0].engine.paused
    assert list(range(100)) == handled


async def _equals(value: Any, expected: int) -> bool:
    return expected == await value

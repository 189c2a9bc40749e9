"""Faults against real brokers: restarts, a broker down at start, alarms, deleted queues,
poison messages, a black-holed network. Each asserts what a user would check: every
message handled at least once, the queue drained, the dead-letter queue exact, the
consumer back, and nothing unexpected logged."""

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from framework import BulkConsumer, Container, Message, Orchestrator, QueueError
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded
from tests.private_broker import PrivateBroker
from tests.proxy import TcpProxy


async def unacked(node: PrivateBroker, queue: str) -> int:
    output = await asyncio.to_thread(node.ctl, "list_queues", "name", "messages_unacknowledged")
    counts = dict(line.split("\t") for line in output.splitlines() if "\t" in line)
    return int(counts[queue])


async def test_broker_restart_loses_nothing(private_broker: PrivateBroker, private: Broker) -> None:
    """Persistent messages in a durable queue survive a restart and are all processed."""
    queue = private.queue_name("restart")
    await private.declare(queue)
    await private.publish_ids(queue, range(200))
    container, log = recorded(private_broker.url)
    handled: list[int] = []

    class Steady(BulkConsumer):
        queues = [queue]
        bulk_size = 20
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            await asyncio.sleep(0.02)
            handled.extend(m.body["id"] for m in messages)

    async with Orchestrator([Steady], container):
        await wait_until(lambda: len(handled) >= 40)
        await asyncio.to_thread(private_broker.stop_app)
        await asyncio.sleep(1)
        await asyncio.to_thread(private_broker.start_app)
        await wait_until(lambda: set(handled) == set(range(200)), timeout=60)
        checker = await Broker.connect(private_broker.url)
        try:
            await wait_until(lambda: checker.consumer_count(queue), timeout=30)
            assert 1 == await checker.consumer_count(queue)
            assert 0 == await checker.ready_count(queue)
        finally:
            await checker.connection.close()
    duplicates = [n for n, count in Counter(handled).items() if count > 1]
    assert len(duplicates) <= Steady.bulk_size * 2  # at most what was out (prefetch)
    assert [] == [m for m in log.messages("error") if "worker crashed" in m]


async def test_broker_down_at_start_then_up(private_broker: PrivateBroker, private: Broker) -> None:
    """Start retries with backoff, logging each attempt, and consumes once the broker is up."""
    queue = private.queue_name("late")
    await private.declare(queue)
    await private.publish_ids(queue, range(10))
    await asyncio.to_thread(private_broker.stop_app)
    container, log = recorded(private_broker.url, connect_timeout=60)
    handled: list[int] = []

    class Late(BulkConsumer):
        queues = [queue]
        bulk_size = 10

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)

    orchestrator = Orchestrator([Late], container)
    starting = asyncio.create_task(orchestrator.start())
    await wait_until(lambda: len(log.messages("warning")) >= 2)
    assert not starting.done()
    await asyncio.to_thread(private_broker.start_app)
    await asyncio.wait_for(starting, 60)
    try:
        await wait_until(lambda: sorted(handled) == list(range(10)))
    finally:
        await orchestrator.stop()
    retries = [
        extra for level, msg, extra in log.records if msg == "RabbitMQ unreachable, retrying"
    ]
    consuming = [extra["retry_in"] for extra in retries if extra["for"] == "consuming"]
    assert consuming[:3] == sorted(consuming[:3])  # backing off
    assert [] == log.messages("error")


async def test_memory_alarm_blocks_dead_letters_but_not_acks(
    private_broker: PrivateBroker, private: Broker
) -> None:
    """While an alarm blocks publishing, good messages are still acked; dead letters wait."""
    queue = private.queue_name("alarm")
    await private.declare(queue)
    await private.publish_ids(queue, range(20))
    container, _ = recorded(private_broker.url)
    handled: list[int] = []

    class Picky(BulkConsumer):
        queues = [queue]
        bulk_size = 10
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            for message in messages:
                handled.append(message.body["id"])
                if message.body["id"] % 2:
                    message.reject()

    private_broker.memory_alarm(True)
    checker = await Broker.connect(private_broker.url)
    try:
        async with Orchestrator([Picky], container):
            await wait_until(lambda: len(handled) == 20)
            await wait_until(lambda: unacked_is(private_broker, queue, 10))
            assert 0 == await checker.ready_count(queue)
            assert 0 == await checker.ready_count(f"{queue}.dlq")
            private_broker.memory_alarm(False)
            await wait_until(lambda: unacked_is(private_broker, queue, 0), timeout=30)
            await wait_until(lambda: ready_is(checker, f"{queue}.dlq", 10), timeout=30)
        dead = await checker.drain(f"{queue}.dlq")
        assert list(range(1, 20, 2)) == sorted(int(m.message_id or -1) for m in dead)
    finally:
        private_broker.memory_alarm(False)
        await checker.connection.close()


async def unacked_is(node: PrivateBroker, queue: str, expected: int) -> bool:
    return expected == await unacked(node, queue)


async def ready_is(broker: Broker, queue: str, expected: int) -> bool:
    return expected == await broker.ready_count(queue)


async def test_access_refused_is_a_clear_error(private_broker: PrivateBroker) -> None:
    """A user who may not configure the queue gets one error naming the queue and the fix."""
    user = f"limited-{uuid.uuid4().hex[:6]}"
    private_broker.ctl("add_user", user, "secret")
    private_broker.ctl("set_permissions", "-p", "/", user, "^$", ".*", ".*")
    try:

        class Forbidden(BulkConsumer):
            queues = ["bulkworker.test.forbidden"]

            async def handle(self, messages: list[Message[Any]]) -> None:
                pass

        url = f"amqp://{user}:secret@127.0.0.1:{private_broker.port}/"
        container, _ = recorded(url)
        with pytest.raises(
            QueueError, match=r"queue 'bulkworker\.test\.forbidden': access refused"
        ):
            async with Orchestrator([Forbidden], container):
                pass
    finally:
        private_broker.ctl("delete_user", user)


@pytest.mark.parametrize("declare", [True, False])
async def test_deleted_queue_is_consumed_again_when_back(broker: Broker, declare: bool) -> None:
    """A queue deleted under a consumer: an error is logged, and consuming resumes."""
    queue = broker.queue_name("deleted")
    await broker.declare(queue)
    await broker.declare(f"{queue}.dlq")  # with declare = False, nothing is declared for us
    container, log = recorded(AMQP_URL)
    handled: list[int] = []

    class Survivor(BulkConsumer):
        queues = [queue]
        bulk_size = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)

    Survivor.declare = declare
    async with Orchestrator([Survivor], container):
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: handled == [0])
        await broker.channel.queue_delete(queue)
        await wait_until(lambda: log.messages("error"))
        if not declare:
            await asyncio.sleep(0.5)
            await broker.declare(queue)
        await wait_until(lambda: broker.consumer_count(queue), timeout=30)
        await broker.publish_ids(queue, range(1, 2))
        await wait_until(lambda: handled == [0, 1])
        assert 1 == await broker.consumer_count(queue)
    assert ["not consuming a queue: will consume it again when it is back"] == log.messages("error")


@pytest.mark.parametrize("isolate", [False, True])
async def test_poison_message_ends_in_the_dead_letter_queue(
    broker: Broker, container: Container, isolate: bool
) -> None:
    """A poison message is retried a bounded number of times, never hot-looped.

    Without isolation its bulk-mates fail with it; with isolate_failures only it does.
    """
    queue = broker.queue_name("poison")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(6))
    handlings: Counter[int] = Counter()

    class Poisoned(BulkConsumer):
        queues = [queue]
        bulk_size = 6
        flush_interval = 0.2
        max_retries = 2
        isolate_failures = isolate

        async def handle(self, messages: list[Message[Any]]) -> None:
            handlings.update(m.body["id"] for m in messages)
            if any(m.body["id"] == 3 for m in messages):
                raise ValueError("3 is poison")

    expected = {3} if isolate else set(range(6))
    async with Orchestrator([Poisoned], container):
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", len(expected)), timeout=30)
        await asyncio.sleep(0.5)
    dead = await broker.drain(f"{queue}.dlq")
    assert expected == {int(m.message_id or -1) for m in dead}
    assert {"retries-exhausted"} == {m.headers["x-bulkworker-reason"] for m in dead}
    assert {3} == {m.headers["x-bulkworker-attempts"] for m in dead}
    # The first try and two retries, no more; isolating adds the re-runs of the
    # halves that held it in the first bulk ([3, 4, 5], then [3]).
    assert (5 if isolate else 3) == handlings[3]
    assert 0 == await broker.ready_count(queue)


async def test_retry_delay_does_not_block_the_consumer(
    broker: Broker, container: Container
) -> None:
    """A retry waits retry_delay in <queue>.retry while later messages are handled."""
    queue = broker.queue_name("delay")
    await broker.declare(queue)
    seen: list[tuple[int, int, float]] = []

    class Patient(BulkConsumer):
        queues = [queue]
        retry_delay = 1.0

        async def handle(self, messages: list[Message[Any]]) -> None:
            message = messages[0]
            seen.append((message.body["id"], message.attempts, time.monotonic()))
            if message.body["id"] == 0 and message.attempts == 0:
                message.requeue()

    async with Orchestrator([Patient], container):
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: seen)
        await broker.publish_ids(queue, range(1, 3))
        await wait_until(lambda: len(seen) == 4, timeout=20)
    assert [(0, 0), (1, 0), (2, 0), (0, 1)] == [(n, attempts) for n, attempts, _ in seen]
    assert seen[3][2] - seen[0][2] >= 0.9
    assert 0 == await broker.ready_count(f"{queue}.retry")


async def test_cut_after_part_of_a_bulk_was_settled(broker: Broker, proxy: TcpProxy) -> None:
    """Acks sent, dead-letter copies in flight, then the cut: nothing lost, DLQ exact."""
    queue = broker.queue_name("cut-part")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(10))
    container, _ = recorded(proxy.url)
    handled: list[int] = []

    class Splitter(BulkConsumer):
        queues = [queue]
        bulk_size = 10

        async def handle(self, messages: list[Message[Any]]) -> None:
            for message in messages:
                handled.append(message.body["id"])
                if message.body["id"] % 2:
                    message.reject()
            if len(handled) == 10:
                # Cut once settlement has begun: acks go out, copies wait for confirms.
                asyncio.get_running_loop().call_soon(proxy.cut)

    async with Orchestrator([Splitter], container):
        await wait_until(
            lambda: ready_is(broker, f"{queue}.dlq", 5) or dlq_at_least(broker, f"{queue}.dlq", 5),
            timeout=30,
        )
        await asyncio.sleep(1.0)
        assert 1 == await broker.consumer_count(queue)
    assert set(range(10)) <= set(handled)
    dead = await broker.drain(f"{queue}.dlq")
    assert {1, 3, 5, 7, 9} == {int(m.message_id or -1) for m in dead}
    assert 0 == await broker.ready_count(queue)


async def dlq_at_least(broker: Broker, queue: str, expected: int) -> bool:
    return await broker.ready_count(queue) >= expected


async def test_shutdown_with_a_black_holed_network_ends_on_time(
    broker: Broker, proxy: TcpProxy
) -> None:
    """With the broker unreachable mid-flight, stop still ends within the shutdown timeout."""
    queue = broker.queue_name("black-hole")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(3))
    container, _ = recorded(proxy.url, shutdown_timeout=1.0)
    handled: list[int] = []

    class Stranded(BulkConsumer):
        queues = [queue]
        bulk_size = 100
        flush_interval = 600

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)

    orchestrator = Orchestrator([Stranded], container)
    await orchestrator.start()
    await wait_until(lambda: orchestrator.runners[0].engine.buffered == 3)
    proxy.black_hole()
    started = time.monotonic()
    await orchestrator.stop()
    assert time.monotonic() - started < 15
    proxy.cut()
    await wait_until(lambda: ready_is(broker, queue, 3), timeout=30)


async def test_retries_are_counted_the_same_on_a_quorum_queue(
    broker: Broker, container: Container
) -> None:
    """The framework's own attempt count bounds retries on quorum queues too."""
    queue = broker.queue_name("quorum")
    handlings: list[int] = []

    class Quorum(BulkConsumer):
        queues = [queue]
        queue_arguments = {"x-queue-type": "quorum"}
        max_retries = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            handlings.append(messages[0].attempts)
            raise ValueError("always")

    async with Orchestrator([Quorum], container):
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 1))
    [dead] = await broker.drain(f"{queue}.dlq")
    assert [0, 1] == handlings
    assert ("retries-exhausted", 2) == (
        dead.headers["x-bulkworker-reason"],
        dead.headers["x-bulkworker-attempts"],
    )

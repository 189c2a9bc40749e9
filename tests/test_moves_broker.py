"""Moves that cannot be carried out, on real brokers: no hot loop, nothing lost, clear warnings."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from pamqp import encode

from framework import (
    Actions,
    BulkConsumer,
    Message,
    Orchestrator,
    Publisher,
    PublishError,
    UnroutableError,
)
from framework.testing.fakes import RecordingLog
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded
from tests.private_broker import PrivateBroker
from tests.proxy import TcpProxy
from tests.test_cli import run_cli
from tests.test_faults import ready_is

HELD = "could not publish the {} copy: holding the message, trying again"
NO_PUBLISH = "this user may not publish retries or dead letters: they will be held and retried"
DROP_HEAD = "retries can push messages out of a capped queue"
GIVEN_UP = "channel closed while a move was held: the broker redelivers the messages"


def as_double(value: Any) -> bytes:
    """pamqp's table value encoder, floats as AMQP doubles (as Java/Go/.NET clients send them)."""
    if isinstance(value, float):
        return b"d" + encode.double(value)
    return ORIGINAL_ENCODER(value)


ORIGINAL_ENCODER = encode.encode_table_value


def warnings_named(log: RecordingLog, message: str) -> list[dict[str, Any]]:
    return [extra for level, msg, extra in log.records if level == "warning" and msg == message]


async def test_double_header_is_carried_and_dead_lettered(broker: Broker) -> None:
    """H1: a double header (1e300) no longer loops: 3 handle calls, then the .dlq, value as text."""
    queue = broker.queue_name("double")
    await broker.declare(queue)
    with mock.patch.object(encode, "encode_table_value", as_double):
        await broker.publish(queue, {"id": 0}, message_id="0", headers={"price": 1e300, "r": 0.1})
    seen: list[Any] = []

    class Doubled(BulkConsumer):
        queues = [queue]
        max_retries = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            seen.append(messages[0].headers["price"])
            raise ValueError("always")

    container, log = recorded(AMQP_URL)
    async with Orchestrator([Doubled], container):
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 1), timeout=20)
        await asyncio.sleep(0.5)
    [dead] = await broker.drain(f"{queue}.dlq")
    assert [1e300, "1e+300", "1e+300"] == seen  # the first delivery really was a double
    assert "1e+300" == dead.headers["price"]
    assert "0.1" == dead.headers["r"]
    assert ["price", "r"] == dead.headers["x-bulkworker-converted"]
    assert 3 == dead.headers["x-bulkworker-attempts"]
    assert 0 == await broker.ready_count(queue)
    assert [] == warnings_named(log, HELD.format("retry"))


async def test_full_reject_publish_queue_holds_the_retry_until_there_is_room(
    broker: Broker,
) -> None:
    """H2: retry copies nacked by a full queue: handle is not called again until there is room."""
    queue = broker.queue_name("full")
    capped = {"x-max-length": 20, "x-overflow": "reject-publish"}
    await broker.declare(queue, **capped)
    await broker.publish(queue, {"id": -1}, message_id="poison")
    filled = asyncio.Event()
    handled: list[int] = []

    class Crowded(BulkConsumer):
        queues = [queue]
        queue_arguments = capped
        prefetch = 1
        max_retries = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.append(messages[0].body["id"])
            if messages[0].body["id"] == -1:
                await filled.wait()  # the queue is full before the retry copy is published
                raise ValueError("poison")

    container, log = recorded(AMQP_URL)
    async with Orchestrator([Crowded], container):
        await wait_until(lambda: handled == [-1])
        await broker.publish_ids(queue, range(20))
        filled.set()
        await asyncio.sleep(4)
        # Held: one handle call, at most a few pauses (0.5 + 1 + 2 s), the original unacked.
        assert [-1] == handled
        assert 1 <= len(warnings_named(log, HELD.format("retry"))) <= 4
        assert 20 == await broker.ready_count(queue)
        await take(broker, queue, 5)
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 1), timeout=30)
    assert sorted([*range(5, 20), -1, -1, -1]) == sorted(handled)
    assert 0 == await broker.ready_count(queue)
    [dead] = await broker.drain(f"{queue}.dlq")
    assert "poison" == dead.message_id


async def take(broker: Broker, queue: str, count: int) -> None:
    """Take ``count`` ready messages off ``queue`` (acked): room appears."""
    source = await broker.channel.declare_queue(queue, passive=True)
    for _ in range(count):
        message = await source.get()
        await message.ack()


async def test_deleted_dead_letter_queue_is_declared_again(broker: Broker) -> None:
    """H3: the .dlq deleted while running: it is declared again and the dead letter lands in it."""
    queue = broker.queue_name("dlq-gone")
    await broker.declare(queue)
    calls: list[int] = []

    class Rejecting(BulkConsumer):
        queues = [queue]
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            calls.append(messages[0].body["id"])
            raise ValueError("rejected")

    container, log = recorded(AMQP_URL)
    async with Orchestrator([Rejecting], container):
        await broker.channel.queue_delete(f"{queue}.dlq")
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 1), timeout=15)
    assert [0] == calls
    gone = warnings_named(log, "a queue the consumer declared was gone: declared it again")
    assert [{"consumer": "Rejecting", "queue": f"{queue}.dlq", "kind": "dead-letter"}] == gone
    assert 0 == await broker.ready_count(queue)


async def test_stop_while_a_move_is_held_is_bounded_and_loses_nothing(broker: Broker) -> None:
    """A held move does not hold up a stop past the shutdown timeout; the message stays queued."""
    queue = broker.queue_name("held-stop")
    await broker.declare(queue)
    await broker.declare(f"{queue}.dlq")

    class Stranded(BulkConsumer):
        queues = [queue]
        declare = False  # so the deleted .dlq is not declared again
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise ValueError("rejected")

    container, log = recorded(AMQP_URL, shutdown_timeout=2)
    orchestrator = Orchestrator([Stranded], container)
    async with orchestrator:
        await broker.channel.queue_delete(f"{queue}.dlq")
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: warnings_named(log, HELD.format("dead-letter")))
        started = time.monotonic()
    assert time.monotonic() - started < 6
    assert 1 == await broker.ready_count(queue)
    assert "UnroutableError" in warnings_named(log, HELD.format("dead-letter"))[0]["error"]


async def test_held_move_is_given_up_when_its_channel_closes(
    broker: Broker, proxy: TcpProxy
) -> None:
    """A cut while a move is held: the move is given up, the message redelivered, then moved."""
    queue = broker.queue_name("held-cut")
    await broker.declare(queue)
    await broker.declare(f"{queue}.dlq")
    calls: list[int] = []

    class Stranded(BulkConsumer):
        queues = [queue]
        declare = False  # so the deleted .dlq is not declared again
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            calls.append(messages[0].body["id"])
            raise ValueError("rejected")

    container, log = recorded(proxy.url)
    async with Orchestrator([Stranded], container):
        await broker.channel.queue_delete(f"{queue}.dlq")
        await broker.publish_ids(queue, range(1))
        await wait_until(lambda: warnings_named(log, HELD.format("dead-letter")))
        proxy.cut()
        await wait_until(lambda: warnings_named(log, GIVEN_UP))
        # With declare = False the consumer resumes once its .dlq is back.
        await broker.declare(f"{queue}.dlq")
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 1), timeout=30)
    assert [0, 0] == calls  # handled again after its redelivery
    assert 0 == await broker.ready_count(queue)


@pytest.fixture
def limited_user(private_broker: PrivateBroker) -> Iterator[str]:
    """A user on the private node who may not publish to the default exchange (amq.default)."""
    user = f"nowrite-{uuid.uuid4().hex[:6]}"
    private_broker.ctl("add_user", user, "secret")
    private_broker.ctl("set_permissions", "-p", "/", user, ".*", r"^(?!amq\.default$).*", ".*")
    try:
        yield user
    finally:
        private_broker.ctl("delete_user", user)


async def test_no_publish_permission_is_warned_and_held(
    private_broker: PrivateBroker, private: Broker, limited_user: str
) -> None:
    """H3: without publish permission: a warning at start, one handle call, moved once granted."""
    queue = private.queue_name("nowrite")
    calls: list[int] = []

    class Unwritable(BulkConsumer):
        queues = [queue]
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            calls.append(messages[0].body["id"])
            raise ValueError("rejected")

    url = f"amqp://{limited_user}:secret@127.0.0.1:{private_broker.port}/"
    container, log = recorded(url)
    async with Orchestrator([Unwritable], container):
        await wait_until(lambda: warnings_named(log, NO_PUBLISH))
        [warning] = warnings_named(log, NO_PUBLISH)
        assert [f"{queue}", f"{queue}.dlq"] == warning["destinations"]
        assert "ACCESS_REFUSED" in warning["error"]
        await private.publish_ids(queue, range(1))
        await asyncio.sleep(4)
        assert [0] == calls
        held = warnings_named(log, HELD.format("dead-letter"))
        assert 1 <= len(held) <= 4
        assert "ACCESS_REFUSED" in held[0]["error"]
        assert 0 == await private.ready_count(f"{queue}.dlq")
        await asyncio.to_thread(
            private_broker.ctl, "set_permissions", "-p", "/", limited_user, ".*", ".*", ".*"
        )
        await wait_until(lambda: ready_is(private, f"{queue}.dlq", 1), timeout=20)
    assert [0] == calls
    assert 0 == await private.ready_count(queue)


async def test_check_reports_no_publish_permission(
    private_broker: PrivateBroker, private: Broker, limited_user: str
) -> None:
    """`check` marks the queues copies go to as 'cannot publish' and exits 1."""
    queue = private.queue_name("check-nowrite")
    url = f"amqp://{limited_user}:secret@127.0.0.1:{private_broker.port}/"
    result = await asyncio.to_thread(
        run_cli, "check", "tests.apps.checked", TEST_QUEUE=queue, BULKWORKER_AMQP_URL=url
    )
    assert 1 == result.returncode
    rows = [line.split()[:5] for line in result.stdout.splitlines()[2:]]
    assert [
        ["Checked", queue, "queue", "cannot", "publish"],
        ["Checked", f"{queue}.dlq", "dead-letter", "queue", "cannot"],
    ] == rows
    assert "ACCESS_REFUSED" in result.stdout


async def test_capped_drop_head_queue_is_warned(broker: Broker) -> None:
    """Retries on a queue capped with drop-head: a warning at start and from `check`."""
    queue = broker.queue_name("drop-head")
    capped = {"x-max-length": 20}

    class Capped(BulkConsumer):
        queues = [queue]
        queue_arguments = capped

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    container, log = recorded(AMQP_URL)
    async with Orchestrator([Capped], container):
        pass
    [warning] = warnings_named(log, DROP_HEAD)
    assert queue == warning["queue"]
    assert "x-max-length=20" in warning["detail"]
    result = await asyncio.to_thread(
        run_cli,
        "check",
        "tests.apps.checked",
        TEST_QUEUE=queue,
        TEST_ARGUMENTS='{"x-max-length": 20}',
    )
    assert 0 == result.returncode, result.stderr
    assert "warning" in result.stdout.splitlines()[2]
    assert "drop-head" in result.stdout


async def test_unroutable_publish_raises_unroutable_error(broker: Broker) -> None:
    """A mandatory publish to a queue that does not exist raises UnroutableError, a PublishError."""
    publisher = Publisher(broker.connection)  # a plain connection serves here
    await publisher.open()
    try:
        with pytest.raises(UnroutableError, match="NO_ROUTE"):
            await publisher.publish(
                {"id": 1}, routing_key=f"bulkworker.nowhere.{uuid.uuid4()}", mandatory=True
            )
        assert issubclass(UnroutableError, PublishError)
    finally:
        await publisher.close()


async def test_a_copy_too_large_for_a_frame_leaves_out_the_largest_headers(
    broker: Broker,
) -> None:
    """An original whose headers fill a frame, and a plain one, both dead-lettered together:
    both land in the .dlq, the fat one without its largest header (named), and the
    publishing connection is never dropped by the broker."""
    queue = broker.queue_name("fat-headers")
    await broker.declare(queue)
    await broker.publish(queue, {"id": 0}, message_id="fat", headers={"blob": "x" * 130_950})
    await broker.publish(queue, {"id": 1}, message_id="plain", headers={"small": 1})

    class Rejecting(BulkConsumer):
        queues = [queue]
        bulk_size = 2
        flush_interval = 0.5
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise ValueError("é" * 1000)

    container, log = recorded(AMQP_URL)
    async with Orchestrator([Rejecting], container):
        await wait_until(lambda: ready_is(broker, f"{queue}.dlq", 2), timeout=20)
    dead = {m.message_id: m.headers for m in await broker.drain(f"{queue}.dlq")}
    assert ["blob"] == dead["fat"]["x-bulkworker-dropped-headers"]
    assert "blob" not in dead["fat"]
    assert ("exception", 1) == (dead["plain"]["x-bulkworker-reason"], dead["plain"]["small"])
    assert "x-bulkworker-dropped-headers" not in dead["plain"]
    assert [] == [r for r in log.records if r[1] == "RabbitMQ connection lost: reconnecting"]

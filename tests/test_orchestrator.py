"""Consumers on the real RabbitMQ: bulks, settlement, decoding, injection, hooks, shutdown."""

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide, inject

from framework import (
    Actions,
    BrokerUnreachableError,
    BulkConsumer,
    ConsumerDefinitionError,
    Container,
    Message,
    Orchestrator,
    QueueError,
    WorkerCrashedError,
)
from framework.errors import ExitRequestedError
from framework.runtime.shutdown import ABANDON_GRACE, ShutdownBudget
from framework.testing import RecordingLog
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import make_container, recorded
from tests.proxy import TcpProxy


async def test_full_bulks_are_handed_over_at_once(broker: Broker, container: Container) -> None:
    """Three full bulks of 10 arrive without waiting for the flush interval."""
    queue = broker.queue_name("full")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(30))
    bulks: list[list[int]] = []

    class Full(BulkConsumer):
        queues = [queue]
        bulk_size = 10
        flush_interval = 600

        async def handle(self, messages: list[Message[Any]]) -> None:
            bulks.append([m.body["id"] for m in messages])

    started = time.monotonic()
    async with Orchestrator([Full], container):
        await wait_until(lambda: len(bulks) == 3, timeout=20)
        elapsed = time.monotonic() - started
    assert list(range(30)) == [n for bulk in bulks for n in bulk]
    assert [10, 10, 10] == [len(bulk) for bulk in bulks]
    assert elapsed < 60
    assert 0 == await broker.ready_count(queue)


async def test_partial_bulk_waits_for_the_flush_interval(
    broker: Broker, container: Container
) -> None:
    """Seven messages with bulk_size 100 arrive as one bulk after flush_interval."""
    queue = broker.queue_name("partial")
    await broker.declare(queue)
    handed: list[tuple[float, int]] = []

    class Partial(BulkConsumer):
        queues = [queue]
        bulk_size = 100
        flush_interval = 0.5

        async def handle(self, messages: list[Message[Any]]) -> None:
            handed.append((time.monotonic(), len(messages)))

    async with Orchestrator([Partial], container):
        published = time.monotonic()
        await broker.publish_ids(queue, range(7))
        await wait_until(lambda: handed)
        await asyncio.sleep(0.6)
    assert 1 == len(handed)
    handed_at, size = handed[0]
    assert 7 == size
    assert handed_at - published >= 0.45
    assert 0 == await broker.ready_count(queue)


async def test_one_consumer_on_several_queues(broker: Broker, container: Container) -> None:
    """Messages of both queues share bulks, and Message.queue tells which queue."""
    first, second = broker.queue_name("multi-a"), broker.queue_name("multi-b")
    await broker.declare(first)
    await broker.declare(second)
    await broker.publish_ids(first, range(5))
    await broker.publish_ids(second, range(5, 10))
    seen: dict[int, str] = {}
    bulk_sizes: list[int] = []

    class Both(BulkConsumer):
        queues = [first, second]
        bulk_size = 10
        flush_interval = 5

        async def handle(self, messages: list[Message[Any]]) -> None:
            bulk_sizes.append(len(messages))
            seen.update({m.body["id"]: m.queue for m in messages})

    async with Orchestrator([Both], container):
        await wait_until(lambda: len(seen) == 10)
    assert dict.fromkeys(range(5), first) | dict.fromkeys(range(5, 10), second) == seen
    assert 10 in bulk_sizes


async def test_each_message_is_settled_by_its_decision_or_the_bulk_action(
    broker: Broker, container: Container
) -> None:
    """reject() dead-letters, requeue() retries once, the rest are acked: each exactly once."""
    queue = broker.queue_name("decide")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(6))
    handled: list[tuple[int, int]] = []

    class Decide(BulkConsumer):
        queues = [queue]
        bulk_size = 6
        flush_interval = 0.3

        async def handle(self, messages: list[Message[Any]]) -> None:
            for message in messages:
                handled.append((message.body["id"], message.attempts))
                if message.body["id"] == 0:
                    message.reject()
                elif message.body["id"] == 1 and message.attempts == 0:
                    message.reject(requeue=True)

    async with Orchestrator([Decide], container):
        await wait_until(lambda: len(handled) == 7)
        await wait_until(lambda: broker.ready_count(f"{queue}.dlq"))
    assert [(1, 1)] == [entry for entry in handled if entry[1]]
    [dead] = await broker.drain(f"{queue}.dlq")
    assert "0" == dead.message_id
    assert {"rejected", queue, "Decide", 0} <= set(dead.headers.values())
    assert 0 == await broker.ready_count(queue)


async def test_exception_requeues_the_bulk_by_default(broker: Broker, container: Container) -> None:
    """When handle raises, on_exception (REQUEUE) returns every message for another try."""
    queue = broker.queue_name("raise")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(4))
    attempts: list[list[int]] = []

    class Flaky(BulkConsumer):
        queues = [queue]
        bulk_size = 4
        flush_interval = 0.3

        async def handle(self, messages: list[Message[Any]]) -> None:
            attempts.append(sorted(m.body["id"] for m in messages))
            if len(attempts) == 1:
                raise RuntimeError("store unavailable")

    async with Orchestrator([Flaky], container):
        await wait_until(lambda: len(attempts) >= 2 and sum(map(len, attempts)) >= 8)
    assert [0, 1, 2, 3] == attempts[0]
    assert [0, 1, 2, 3] == sorted(n for bulk in attempts[1:] for n in bulk)
    assert 0 == await broker.ready_count(queue)


async def test_on_exception_reject_dead_letters_with_the_reason(
    broker: Broker, container: Container
) -> None:
    """on_exception = REJECT moves the failed bulk to <queue>.dlq, headers saying why."""
    queue = broker.queue_name("reject")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(3))
    calls = 0

    class Refuses(BulkConsumer):
        queues = [queue]
        bulk_size = 3
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            nonlocal calls
            calls += 1
            raise ValueError("bad bulk")

    async with Orchestrator([Refuses], container):
        await wait_until(lambda: calls == 1)
        await wait_until(lambda: broker.ready_count(f"{queue}.dlq"))
        await asyncio.sleep(0.2)
    assert 1 == calls
    dead = await broker.drain(f"{queue}.dlq")
    assert ["0", "1", "2"] == sorted(m.message_id or "" for m in dead)
    headers = dead[0].headers
    assert "exception" == headers["x-bulkworker-reason"]
    assert "ValueError: bad bulk" == headers["x-bulkworker-error"]
    assert queue == headers["x-bulkworker-queue"]
    assert 0 == await broker.ready_count(queue)


async def test_handle_runs_in_the_frameworks_own_task(broker: Broker, container: Container) -> None:
    """handle never runs in the client library's per-delivery task."""
    queue = broker.queue_name("task")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(2))
    task_names: list[str] = []

    class Where(BulkConsumer):
        queues = [queue]
        bulk_size = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            task = asyncio.current_task()
            assert task is not None
            task_names.append(task.get_name())

    async with Orchestrator([Where], container):
        await wait_until(lambda: task_names)
    assert ["bulkworker:Where"] == task_names


async def test_undecodable_message_from_another_client_never_reaches_handle(
    broker: Broker, container: Container
) -> None:
    """Invalid JSON with a JSON type is dead-lettered; a non-JSON body without type is bytes."""
    queue = broker.queue_name("undecodable")
    await broker.declare(queue)
    raw_connection = await aiormq.connect(AMQP_URL)
    raw_channel = await raw_connection.channel()
    await raw_channel.basic_publish(
        b"{not json",
        routing_key=queue,
        properties=aiormq.spec.Basic.Properties(
            content_type="application/json", message_id="broken"
        ),
    )
    await raw_channel.basic_publish(
        b"plain \xff bytes", routing_key=queue, properties=aiormq.spec.Basic.Properties()
    )
    await raw_connection.close()
    bodies: list[Any] = []

    class Tolerant(BulkConsumer):
        queues = [queue]
        bulk_size = 1

        async def handle(self, messages: list[Message[Any]]) -> None:
            bodies.extend(m.body for m in messages)

    async with Orchestrator([Tolerant], container):
        await wait_until(lambda: bodies)
        await wait_until(lambda: broker.ready_count(f"{queue}.dlq"))
    assert [b"plain \xff bytes"] == bodies
    [dead] = await broker.drain(f"{queue}.dlq")
    assert ("broken", b"{not json") == (dead.message_id, dead.body)
    assert "undecodable" == dead.headers["x-bulkworker-reason"]
    assert "invalid JSON" in str(dead.headers["x-bulkworker-error"])
    assert 0 == await broker.ready_count(queue)


class Store:
    """A user's service: remembers what it was given."""

    def __init__(self) -> None:
        self.saved: list[Any] = []


class AppContainer(Container):
    store = providers.Singleton(Store)


async def test_services_from_a_user_container_are_injected(broker: Broker) -> None:
    """Markers in __init__ and handle (with and without @inject) get the user's providers."""
    queue = broker.queue_name("inject")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(6))
    container = make_container(container_class=AppContainer)

    class Injected(BulkConsumer):
        queues = [queue]
        bulk_size = 3
        flush_interval = 0.2

        def __init__(self, store: Store = Provide["store"]) -> None:
            self.store = store

        async def handle(
            self,
            messages: list[Message[Any]],
            state: dict[str, Any] = Provide["state"],
            logger: Any = Provide[Container.logger],
        ) -> None:
            self.store.saved.extend(m.body["id"] for m in messages)
            state["logger"] = logger

    class Decorated(BulkConsumer):
        queues = [queue]
        bulk_size = 3
        flush_interval = 0.2

        @inject
        async def handle(
            self, messages: list[Message[Any]], store: Store = Provide[AppContainer.store]
        ) -> None:
            store.saved.extend(m.body["id"] for m in messages)

    async with Orchestrator([Injected, Decorated], container):
        await wait_until(lambda: len(container.store().saved) == 6)
        logger = await container.logger()
        assert logger is container.state()["logger"]
    assert list(range(6)) == sorted(container.store().saved)


async def test_unresolvable_marker_fails_at_start_naming_it(broker: Broker) -> None:
    """A consumer asking for a provider the container lacks fails before consuming."""
    queue = broker.queue_name("unresolved")

    class Needy(BulkConsumer):
        queues = [queue]

        async def handle(self, messages: list[Message[Any]], store: Any = Provide["store"]) -> None:
            pass

    container = make_container()
    with pytest.raises(
        ConsumerDefinitionError,
        match=r"Needy\.handle parameter 'store' asks for 'store', which Container cannot provide",
    ):
        async with Orchestrator([Needy], container):
            pass


async def test_startup_hooks_finish_before_handling_and_shutdown_hooks_after_stop(
    broker: Broker, container: Container
) -> None:
    """Every startup hook completes before the first handle; shutdown hooks see no consumers."""
    queue = broker.queue_name("hooks")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    events: list[str] = []

    class Hooked(BulkConsumer):
        queues = [queue]
        bulk_size = 5

        async def handle(
            self, messages: list[Message[Any]], state: dict[str, Any] = Provide["state"]
        ) -> None:
            events.append(f"handle:{state['ready']}")

    orchestrator = Orchestrator([Hooked], container)

    @orchestrator.on_startup
    async def warm_up(container: Container) -> None:
        await asyncio.sleep(0.3)
        container.state()["ready"] = "yes"
        events.append("startup")

    @orchestrator.on_shutdown
    async def report(container: Container) -> None:
        events.append(f"shutdown:consumers={await broker.consumer_count(queue)}")

    async with orchestrator:
        await wait_until(lambda: len(events) == 2)
    assert ["startup", "handle:yes", "shutdown:consumers=0"] == events


async def test_leaving_hands_over_the_buffered_partial_bulk(
    broker: Broker, container: Container
) -> None:
    """Stopping cancels consumers, hands the partial bulk to handle, and acks it."""
    queue = broker.queue_name("drain")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    handled: list[int] = []

    class Slow(BulkConsumer):
        queues = [queue]
        bulk_size = 100
        flush_interval = 600

        async def handle(self, messages: list[Message[Any]]) -> None:
            handled.extend(m.body["id"] for m in messages)

    orchestrator = Orchestrator([Slow], container)
    async with orchestrator:
        await wait_until(lambda: orchestrator.runners[0].engine.buffered == 5)
        assert [] == handled
    assert list(range(5)) == handled
    assert 0 == await broker.ready_count(queue)
    assert 0 == await broker.consumer_count(queue)


async def test_stop_twice_is_harmless(broker: Broker, container: Container) -> None:
    """stop() may be called again: it waits for the first and does nothing more."""
    queue = broker.queue_name("twice")

    class Idle(BulkConsumer):
        queues = [queue]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    orchestrator = Orchestrator([Idle], container)
    await orchestrator.start()
    await asyncio.gather(orchestrator.stop(), orchestrator.stop())
    await orchestrator.stop()
    assert "<Orchestrator(consumers=1, running=0)>" == repr(orchestrator)


async def test_missing_queue_with_declare_false_is_a_clear_error(
    broker: Broker, container: Container
) -> None:
    """declare = False on a queue that does not exist names the queue and the fix."""
    queue = broker.queue_name("missing")

    class Strict(BulkConsumer):
        queues = [queue]
        declare = False

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    with pytest.raises(QueueError, match=f"queue '{queue}' does not exist and Strict.declare"):
        async with Orchestrator([Strict], container):
            pass


async def test_queue_with_other_arguments_is_a_clear_error(
    broker: Broker, container: Container
) -> None:
    """A queue declared differently names the queue and what the broker says differs."""
    queue = broker.queue_name("mismatch")
    await broker.declare(queue, **{"x-max-length": 10})

    class Quorum(BulkConsumer):
        queues = [queue]
        queue_arguments = {"x-queue-type": "quorum"}

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    with pytest.raises(QueueError, match=f"queue '{queue}' exists with other arguments") as caught:
        async with Orchestrator([Quorum], container):
            pass
    assert "x-queue-type" in str(caught.value) or "x-max-length" in str(caught.value)


async def test_unreachable_broker_is_a_clear_error() -> None:
    """No broker at the URL: BrokerUnreachableError with the redacted URL."""

    class Lonely(BulkConsumer):
        queues = ["never"]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    container = make_container("amqp://guest:secret@127.0.0.1:1/")
    container.config.connect_timeout.from_value(0.5)
    with pytest.raises(BrokerUnreachableError, match=r"guest:\*\*\*\*\*\*@127.0.0.1:1") as caught:
        async with Orchestrator([Lonely], container):
            pass
    assert "secret" not in str(caught.value)


async def unacked(queue: str) -> int:
    """Messages delivered and not yet settled, as the broker counts them."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "list_queues",
        "name",
        "messages_unacknowledged",
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    for line in output.decode().splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"queue {queue} not listed")


async def test_prefetch_bounds_what_the_broker_sends_ahead(
    broker: Broker, container: Container
) -> None:
    """With handle held, the broker has exactly prefetch messages out: one bulk plus the next."""
    queue = broker.queue_name("prefetch")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(30))
    gate = asyncio.Event()

    class Held(BulkConsumer):
        queues = [queue]
        bulk_size = 5

        async def handle(self, messages: list[Message[Any]]) -> None:
            await gate.wait()

    orchestrator = Orchestrator([Held], container)
    async with orchestrator:
        engine = orchestrator.runners[0].engine
        await wait_until(lambda: engine.buffered == 5)
        await asyncio.sleep(0.2)
        assert 10 == await unacked(queue)
        assert 20 == await broker.ready_count(queue)
        gate.set()
        await wait_until(lambda: engine.bulks_handled == 6)
    assert 0 == await broker.ready_count(queue)


async def test_connection_closes_before_the_logger(
    broker: Broker, container: Container, capfd: pytest.CaptureFixture[str]
) -> None:
    """Shutdown closes the connection first, so its last record is still written."""
    queue = broker.queue_name("order")

    class Quiet(BulkConsumer):
        queues = [queue]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    async with Orchestrator([Quiet], container):
        pass
    lines = capfd.readouterr().out.splitlines()
    assert '"msg": "RabbitMQ connection closed"' in lines[-1]


async def test_start_warns_when_bulks_could_outlive_the_brokers_ack_timeout(
    broker: Broker, container: Container
) -> None:
    """flush_interval plus handler_timeout near 30 minutes earns a warning at start."""
    from dependency_injector import providers as di_providers

    from framework.testing import RecordingLog

    queue = broker.queue_name("ack-timeout")
    log = RecordingLog()
    container.logger.override(di_providers.Object(log))

    class Slowpoke(BulkConsumer):
        queues = [queue]
        flush_interval = 1200
        handler_timeout = 300

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    async with Orchestrator([Slowpoke], container):
        pass
    [warning] = [extra for level, msg, extra in log.records if "ack timeout" in msg]
    assert (1500.0, "Slowpoke") == (warning["seconds"], warning["consumer"])
    [stopped] = [extra for level, msg, extra in log.records if msg == "consumer stopped"]
    assert ("Slowpoke", 0) == (stopped["consumer"], stopped["bulks_handled"])


def idle_consumer(queue: str) -> type[BulkConsumer]:
    class Idle(BulkConsumer):
        queues = [queue]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    return Idle


async def serving(orchestrator: Orchestrator) -> "asyncio.Task[None]":
    """``serve()`` in a task, once every consumer is consuming."""
    task = asyncio.create_task(orchestrator.serve())
    await wait_until(
        lambda: orchestrator.runners and orchestrator.runners[0].subscription.consuming
    )
    return task


@pytest.mark.parametrize(
    ("request_", "code"),
    [(SystemExit(3), 3), (SystemExit("bye"), 1), (SystemExit(), 0), (KeyboardInterrupt(), 130)],
)
async def test_an_exit_request_from_handle_stops_gracefully_with_its_status(
    broker: Broker, request_: BaseException, code: int
) -> None:
    """SystemExit / KeyboardInterrupt reported by the engine: one log line, a graceful stop."""
    container, log = recorded()
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("exit"))], container)
    serve = await serving(orchestrator)
    engine = orchestrator.runners[0].engine
    assert engine.handling._on_exit_request is not None
    engine.handling._on_exit_request(request_)
    with pytest.raises(ExitRequestedError) as raised:
        await asyncio.wait_for(serve, 20)
    assert code == raised.value.code
    [asked] = [(level, e) for level, msg, e in log.records if msg.startswith("handle asked")]
    assert ("warning", "Idle", code) == (asked[0], asked[1]["consumer"], asked[1]["exit_code"])
    assert ["Idle"] == [e["consumer"] for _, msg, e in log.records if msg == "consumer stopped"]


@pytest.mark.parametrize("ending", ["cancelled", "raises", "returns"])
async def test_a_worker_that_ends_on_its_own_stops_serve_with_an_error(
    broker: Broker, monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    """A worker cancelled, failing or returning while no stop was asked: WorkerCrashedError."""
    from framework.core.engine import BulkEngine

    real_run = BulkEngine.run

    async def ending_run(engine: BulkEngine) -> None:
        await asyncio.sleep(0.3)
        if ending == "raises":
            raise RuntimeError("engine broke")
        if ending == "cancelled":
            raise asyncio.CancelledError()
        # "returns": falls through, the worker ends without being asked.

    monkeypatch.setattr(BulkEngine, "run", ending_run)
    container, log = recorded()
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("ends"))], container)
    serve = asyncio.create_task(orchestrator.serve())
    with pytest.raises(WorkerCrashedError, match="the worker of consumer Idle ended"):
        await asyncio.wait_for(serve, 20)
    monkeypatch.setattr(BulkEngine, "run", real_run)
    [ended] = [extra for _, msg, extra in log.records if msg == "consumer worker ended: stopping"]
    cause = {"cancelled": "cancelled", "raises": "RuntimeError: engine broke"}.get(ending)
    assert ("Idle", cause or "returned") == (ended["consumer"], ended["cause"])
    assert 0 == await broker.consumer_count(orchestrator.runners[0].settings.queues[0])


async def test_stop_called_while_serving_ends_serve(broker: Broker) -> None:
    """orchestrator.stop() from another task: serve() returns without an error."""
    container, _ = recorded()
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("stop-serve"))], container)
    serve = await serving(orchestrator)
    await orchestrator.stop()
    await asyncio.wait_for(serve, 10)
    assert "<Orchestrator(consumers=1, running=0)>" == repr(orchestrator)


@pytest.mark.parametrize("swallows", [False, True])
async def test_sigterm_during_a_startup_hook_that_never_ends_stops_in_time(
    broker: Broker, swallows: bool
) -> None:
    """SIGTERM while a startup hook waits forever (even ignoring cancellation): serve ends."""
    container, log = recorded(shutdown_timeout=4.0)
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("hook"))], container)
    entered, released = asyncio.Event(), asyncio.Event()

    @orchestrator.on_startup
    async def forever(container: Container) -> None:
        entered.set()
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not swallows or released.is_set():
                    raise

    serve = asyncio.create_task(orchestrator.serve())
    try:
        await asyncio.wait_for(entered.wait(), 20)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(asyncio.shield(serve), 4.0 + 5)
        elapsed = time.monotonic() - started
    finally:
        released.set()
        await release(*(task for task in asyncio.all_tasks() if "start" in task.get_name()))
    assert elapsed < 4.0 + 5
    assert [] == orchestrator.runners
    closed = [e["for"] for _, msg, e in log.records if msg == "RabbitMQ connection closed"]
    assert ["consuming", "publishing"] == sorted(closed)


def test_the_shutdown_budget_adds_up_to_the_timeout_plus_the_abandon_grace() -> None:
    """Every step of a stop has a limit; together they are the shutdown timeout plus 1 s."""
    for timeout in (0.5, 4.0, 8.0, 30.0, 120.0):
        budget = ShutdownBudget(timeout)
        assert timeout + ABANDON_GRACE == pytest.approx(budget.total)
        assert budget.drain >= 0


async def test_a_stop_where_every_step_hits_its_limit_stays_within_the_budget(
    broker: Broker, proxy: TcpProxy
) -> None:
    """Stuck handle, endless shutdown hook, silent broker: stop() ends within the budget."""
    queue = broker.queue_name("budget")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(3))
    container, log = recorded(proxy.url, shutdown_timeout=4.0)
    entered, released = asyncio.Event(), asyncio.Event()

    class Stuck(BulkConsumer):
        queues = [queue]
        bulk_size = 3

        async def handle(self, messages: list[Message[Any]]) -> None:
            entered.set()
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    if released.is_set():
                        raise

    orchestrator = Orchestrator([Stuck], container)

    @orchestrator.on_shutdown
    async def endless(container: Container) -> None:
        await asyncio.Event().wait()

    await orchestrator.start()
    try:
        await asyncio.wait_for(entered.wait(), 20)
        proxy.black_hole()
        started = time.monotonic()
        await asyncio.wait_for(orchestrator.stop(), 30)
        elapsed = time.monotonic() - started
    finally:
        released.set()
        await release(orchestrator.runners[0].worker)
    assert elapsed < ShutdownBudget(4.0).total + 1.0
    messages = [msg for _, msg, _ in log.records]
    assert "shutdown hooks did not finish in time: the rest were skipped" in messages
    assert any(msg.startswith("consumer worker ignored cancellation") for msg in messages)
    proxy.cut()
    await wait_until(lambda: ready_is(broker, queue, 3), timeout=30)


async def release(*tasks: "asyncio.Task[None] | None") -> None:
    """End tasks a test left stuck on purpose, once they honour cancellation again."""
    stuck = {task for task in tasks if task is not None}
    for task in stuck:
        task.cancel()
    if stuck:
        await asyncio.wait(stuck, timeout=15)


async def ready_is(broker: Broker, queue: str, expected: int) -> bool:
    return expected == await broker.ready_count(queue)


class SilentPublisher:
    """A publisher whose permission probe never answers (an alarm holding its confirm)."""

    def __init__(self) -> None:
        self.probing = asyncio.Event()

    async def refusal(self) -> str | None:
        self.probing.set()
        await asyncio.Event().wait()
        return None

    async def publish_move(self, move: Any) -> None:
        raise AssertionError("no copies in this test")


async def test_a_stop_ends_the_start_up_probe_that_has_no_answer_yet(broker: Broker) -> None:
    """The publish-permission probe still waiting when the stop comes is ended with it."""
    queue = broker.queue_name("probe")
    container, _ = recorded()
    publisher = SilentPublisher()
    container.publisher.override(providers.Object(publisher))
    before = asyncio.all_tasks()
    orchestrator = Orchestrator([idle_consumer(queue)], container)
    async with orchestrator:
        await asyncio.wait_for(publisher.probing.wait(), 10)
    left = [task for task in asyncio.all_tasks() - before if task is not asyncio.current_task()]
    assert [] == [task for task in left if "warn_about_publish_permission" in repr(task)]


async def test_sigterm_while_connections_are_being_opened_stops_in_time(
    broker: Broker, proxy: TcpProxy
) -> None:
    """SIGTERM while the broker has not yet answered the connection handshake: serve ends."""
    proxy.black_hole()
    container, _ = recorded(proxy.url, shutdown_timeout=4.0, connect_timeout=60.0)
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("opening"))], container)
    serve = asyncio.create_task(orchestrator.serve())
    await wait_until(lambda: proxy.connections >= 1)
    started = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serve, ShutdownBudget(4.0).total + 5)
    assert time.monotonic() - started < ShutdownBudget(4.0).total + 5
    assert [] == orchestrator.runners


async def closes_cancelled() -> AsyncIterator[str]:
    """A resource whose close fails as one does whose start a stop cancelled."""
    yield "opened"
    raise asyncio.CancelledError


async def test_a_stop_during_start_ends_even_when_a_resource_fails_to_close(
    broker: Broker,
) -> None:
    """SIGTERM during start; a resource's close raises CancelledError: serve still ends, and
    the connections are closed all the same."""

    class Shaky(Container):
        shaky = providers.Resource(closes_cancelled)

    container = make_container(container_class=Shaky)
    container.config.shutdown_timeout.from_value(4.0)
    log = RecordingLog()
    container.logger.override(providers.Object(log))
    orchestrator = Orchestrator([idle_consumer(broker.queue_name("shaky"))], container)
    entered = asyncio.Event()

    @orchestrator.on_startup
    async def forever(container: Container) -> None:
        entered.set()
        await asyncio.sleep(3600)

    serve = asyncio.create_task(orchestrator.serve())
    await asyncio.wait_for(entered.wait(), 20)
    os.kill(os.getpid(), signal.SIGTERM)
    done, _ = await asyncio.wait({serve}, timeout=ShutdownBudget(4.0).total + 5)
    assert {serve} == done
    closed = [e["for"] for _, msg, e in log.records if msg == "RabbitMQ connection closed"]
    assert ["consuming", "publishing"] == sorted(closed)

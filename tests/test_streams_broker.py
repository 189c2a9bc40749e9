"""Stream queues on the real RabbitMQ (and PostgreSQL): offsets, restarts, cuts, failures."""

import asyncio
import datetime
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from dependency_injector import providers

from examples.stream_to_postgres import EventsFromStream, StreamContainer, open_pool
from framework import Actions, BulkConsumer, Message, Orchestrator, StreamStartError
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import make_container, recorded
from tests.private_broker import PrivateBroker
from tests.test_metrics import scrape, value
from tests.test_outage_broker import read_lines, short_timeout_node  # noqa: F401
from tests.test_probes import port_of

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
STREAM = {"x-queue-type": "stream"}


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A PostgreSQL database of this test's own; its DSN."""
    name = f"bulkworker_stream_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{POSTGRES}/{name}"
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def stream_of(broker: Broker, label: str, count: int) -> str:
    """A new stream queue holding ``count`` messages numbered from 0."""
    queue = broker.queue_name(label)
    await broker.declare(queue, **STREAM)
    await publish_numbers(broker, queue, range(count))
    return queue


async def publish_numbers(broker: Broker, queue: str, numbers: range) -> None:
    for number in numbers:
        await broker.publish(queue, {"n": number})


class Seen:
    """What a test consumer handled: each number, each offset, in order."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.offsets: list[int | None] = []

    def take(self, messages: list[Message[Any]]) -> None:
        self.numbers.extend(message.body["n"] for message in messages)
        self.offsets.extend(message.stream_offset for message in messages)


def reader(queue: str, seen: Seen, **attributes: Any) -> type[BulkConsumer]:
    """A stream consumer of ``queue`` recording into ``seen``; ``pause`` seconds per bulk."""
    pause = attributes.pop("pause", 0.0)

    async def handle(self: Any, messages: list[Message[Any]]) -> None:
        await asyncio.sleep(pause)
        seen.take(messages)

    body = {
        "queues": [queue],
        "queue_arguments": STREAM,
        "on_exception": Actions.REJECT,
        "bulk_size": 50,
        "flush_interval": 0.2,
        "handle": handle,
        **attributes,
    }
    return type("StreamReader", (BulkConsumer,), body)


async def test_a_stream_is_read_from_first_in_offset_order(broker: Broker) -> None:
    """stream_offset="first": all 1000 messages, once each, offsets rising, nothing removed."""
    queue = await stream_of(broker, "stream-first", 1000)
    seen = Seen()
    container, _ = recorded(http_port=0)
    orchestrator = Orchestrator([reader(queue, seen, stream_offset="first")], container)
    async with orchestrator:
        await wait_until(lambda: len(seen.numbers) >= 1000, timeout=30)
        await asyncio.sleep(0.3)
        samples = await scrape(f"http://127.0.0.1:{port_of(orchestrator)}/metrics")
    labels = {"consumer": "StreamReader", "queue": queue}
    assert max(seen.offsets) + 1 == value(samples, "bulkworker_stream_offset", **labels)
    assert list(range(1000)) == seen.numbers
    offsets = [offset for offset in seen.offsets if offset is not None]
    assert 1000 == len(offsets)
    assert sorted(set(offsets)) == offsets
    again = Seen()  # acks removed nothing: a second reader from "first" gets it all
    async with Orchestrator([reader(queue, again, stream_offset="first")], make_container()):
        await wait_until(lambda: len(again.numbers) >= 1000, timeout=30)
    assert seen.offsets == again.offsets


async def test_next_last_and_a_timestamp_start_where_rabbitmq_says(broker: Broker) -> None:
    """next: only what comes after the start; last: the newest chunk; a datetime: from then on."""
    queue = await stream_of(broker, "stream-offsets", 5)
    await asyncio.sleep(1.2)
    moment = datetime.datetime.now(datetime.UTC)
    await asyncio.sleep(1.2)
    await publish_numbers(broker, queue, range(5, 10))
    seen = {"next": Seen(), "last": Seen(), "moment": Seen()}
    consumers = [
        reader(queue, seen["next"], stream_offset="next"),
        reader(queue, seen["last"], stream_offset="last"),
        reader(queue, seen["moment"], stream_offset=moment),
    ]
    async with Orchestrator(consumers, make_container()):
        await wait_until(lambda: len(seen["moment"].numbers) >= 5, timeout=15)
        await publish_numbers(broker, queue, range(10, 12))
        await wait_until(lambda: len(seen["next"].numbers) >= 2, timeout=15)
        await asyncio.sleep(0.5)
    assert [10, 11] == seen["next"].numbers
    assert 9 in seen["last"].numbers
    assert 0 not in seen["last"].numbers
    assert [10, 11] == seen["last"].numbers[-2:]
    assert list(range(5, 12)) == seen["moment"].numbers


async def stored_rows(dsn: str) -> list[int]:
    connection = await asyncpg.connect(dsn)
    try:
        return [row["n"] for row in await connection.fetch("SELECT n FROM events")]
    except asyncpg.UndefinedTableError:
        return []
    finally:
        await connection.close()


def postgres_container(dsn: str) -> StreamContainer:
    container = make_container(container_class=StreamContainer)
    container.database.override(providers.Resource(open_pool, dsn=dsn))
    return container


def slow_reader(queue: str) -> type[EventsFromStream]:
    class SlowEvents(EventsFromStream):
        queues = [queue]
        bulk_size = 40
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            await asyncio.sleep(0.05)  # long enough to stop it mid-stream
            await super().handle(messages)

    return SlowEvents


WORKER_APP = """
import asyncio, os
from typing import Any
from framework import Message
from examples.stream_to_postgres import EventsFromStream


class KilledEvents(EventsFromStream):
    queues = [os.environ["EVENTS_STREAM"]]
    bulk_size = 40
    flush_interval = 0.2

    async def handle(self, messages: list[Message[Any]]) -> None:
        await asyncio.sleep(0.05)
        await super().handle(messages)
        print("stored up to", messages[-1].body["n"], flush=True)
"""


async def run_until_killed(queue: str, dsn: str, tmp_path: Path, after: int) -> int:
    """Run a worker process on the stream and SIGKILL it once ``after`` rows are stored."""
    package = tmp_path / "killed_app"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(textwrap.dedent(WORKER_APP))
    environment = {
        **os.environ,
        "EVENTS_STREAM": queue,
        "EVENTS_DSN": dsn,
        "BULKWORKER_AMQP_URL": AMQP_URL,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    command = [sys.executable, "-m", "framework.cli", "run", "killed_app", "--container"]
    process = subprocess.Popen(
        [*command, "examples.stream_to_postgres:StreamContainer"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reading = asyncio.create_task(asyncio.to_thread(read_lines, process, lines))
    try:
        await wait_until(lambda: after <= len(lines_stored(lines)), timeout=60)
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await reading
        assert process.stdout is not None
        process.stdout.close()
    assert -signal.SIGKILL == process.returncode, "\n".join(lines[-20:])
    return len(lines_stored(lines))


def lines_stored(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("stored up to")]


async def test_restarts_from_the_stored_offset_handle_every_message_exactly_once(
    broker: Broker, database: str, tmp_path: Path
) -> None:
    """Stopped gracefully, then SIGKILLed mid-run: the rows hold each of 1000 numbers once."""
    queue = await stream_of(broker, "stream-exactly-once", 1000)
    runs: list[int] = []
    for stop_at in (250, 500):
        async with Orchestrator([slow_reader(queue)], postgres_container(database)):
            await wait_until(lambda: stored_rows(database), timeout=20)
            await wait_until(lambda at=stop_at: _at_least(stored_rows(database), at), timeout=30)
        runs.append(len(await stored_rows(database)))
    killed_after = await run_until_killed(queue, database, tmp_path, after=5)
    runs.append(len(await stored_rows(database)))
    async with Orchestrator([slow_reader(queue)], postgres_container(database)):
        await wait_until(lambda: _at_least(stored_rows(database), 1000), timeout=60)
        await asyncio.sleep(1.0)  # anything read twice would be stored by now
    rows = await stored_rows(database)
    print(f"\nrows after each run: {runs} (the killed run reported {killed_after} bulks)")
    assert sorted(runs) == runs
    assert runs[-1] < 1000, "every stop came mid-stream"
    assert Counter() == +(Counter(rows) - Counter(range(1000)))  # no duplicates
    assert list(range(1000)) == sorted(rows)  # no gaps
    assert 0 == await broker.ready_count(f"{queue}.dlq")


async def _at_least(rows: Any, count: int) -> bool:
    return len(await rows) >= count


async def test_a_cut_connection_resumes_after_the_last_settled_offset(
    broker: Broker, proxy: Any
) -> None:
    """A reconnect mid-stream reads on from where it was, not from the configured start."""
    queue = await stream_of(broker, "stream-cut", 1000)
    seen = Seen()
    container, log = recorded(proxy.url + "?reconnect_interval=0.2", log_stats_interval=0)
    consumer = reader(queue, seen, stream_offset="first", pause=0.05)
    async with Orchestrator([consumer], container):
        await wait_until(lambda: len(seen.numbers) >= 300, timeout=30)
        connections = proxy.connections
        proxy.cut()
        await wait_until(lambda: proxy.connections >= connections + 1, timeout=20)
        await wait_until(lambda: len(set(seen.numbers)) >= 1000, timeout=60)
        await asyncio.sleep(0.5)
    assert any("channel reopened" in message for message in log.messages("warning"))
    starts = [entry for entry in log.records if entry[1] == "reading a stream"]
    assert "first" == starts[0][2]["offset"]
    assert 1 == len(starts[1:])
    assert 300 <= int(starts[1][2]["offset"])  # on from where it was
    assert Counter() == +(Counter(seen.numbers) - Counter(range(1000)))
    assert list(range(1000)) == sorted(seen.numbers)


async def test_a_failing_message_on_a_stream_is_dead_lettered_and_the_stream_reads_on(
    broker: Broker,
) -> None:
    """on_exception=REJECT: the poison message is copied to the .dlq with its reason; no nack."""
    queue = await stream_of(broker, "stream-poison", 100)
    seen = Seen()

    class Poisoned(BulkConsumer):
        queues = [queue]
        queue_arguments = STREAM
        stream_offset = "first"
        on_exception = Actions.REJECT
        isolate_failures = True
        bulk_size = 10
        flush_interval = 0.2

        async def handle(self, messages: list[Message[Any]]) -> None:
            if any(message.body["n"] == 42 for message in messages):
                raise ValueError("42 is not allowed")
            seen.take(messages)

    container, log = recorded(log_stats_interval=0)
    async with Orchestrator([Poisoned], container) as orchestrator:
        await wait_until(lambda: len(seen.numbers) >= 99, timeout=20)
        await wait_until(lambda: broker.ready_count(f"{queue}.dlq"), timeout=10)
        assert [queue] == orchestrator.runners[0].subscription.consuming
    assert [n for n in range(100) if n != 42] == seen.numbers
    [dead] = await broker.drain(f"{queue}.dlq")
    assert b'{"n": 42}' == dead.body
    assert "exception" == dead.headers["x-bulkworker-reason"]
    assert "ValueError: 42 is not allowed" == dead.headers["x-bulkworker-error"]
    assert isinstance(dead.headers["x-stream-offset"], int)
    assert [] == [m for m in log.messages("warning") if "channel reopened" in m]


async def test_an_outage_on_a_stream_holds_the_bulk_and_loses_nothing(broker: Broker) -> None:
    """The sink down a while: the bulk is probed again, the rest re-read; all once, none lost."""
    queue = await stream_of(broker, "stream-outage", 200)
    seen = Seen()
    calls = {"failed": 0}

    class Flaky(BulkConsumer):
        queues = [queue]
        queue_arguments = STREAM
        stream_offset = "first"
        on_exception = Actions.REJECT
        bulk_size = 20
        flush_interval = 0.2
        outage_backoff = 0.3
        outage_backoff_max = 0.5

        async def handle(self, messages: list[Message[Any]]) -> None:
            if calls["failed"] < 4 and messages[0].body["n"] >= 60:
                calls["failed"] += 1
                raise ConnectionRefusedError("the database is down")
            seen.take(messages)

    container, log = recorded(log_stats_interval=0)
    async with Orchestrator([Flaky], container):
        await wait_until(lambda: len(seen.numbers) >= 200, timeout=30)
        await asyncio.sleep(0.5)
    assert 4 == calls["failed"]
    assert list(range(200)) == seen.numbers
    assert any("consumer resumed" in message for message in log.messages("warning"))
    assert 0 == await broker.ready_count(f"{queue}.dlq")


async def test_a_held_stream_bulk_never_meets_the_brokers_consumer_timeout(
    short_timeout_node: PrivateBroker,  # noqa: F811 (the fixture, imported above)
) -> None:
    """Sink down 8 s, broker timeout 4 s: given back by credit, no channel closed, all once."""
    node = short_timeout_node
    checker = await Broker.connect(node.url)
    queue = await stream_of(checker, "stream-held", 100)
    down = {"until": 0.0}
    seen = Seen()

    class Held(BulkConsumer):
        queues = [queue]
        queue_arguments = STREAM
        stream_offset = "first"
        on_exception = Actions.REJECT
        bulk_size = 20
        flush_interval = 0.2
        outage_backoff_max = 2

        async def handle(self, messages: list[Message[Any]]) -> None:
            if asyncio.get_running_loop().time() < down["until"]:
                raise ConnectionRefusedError("the database is down")
            seen.take(messages)

    container, log = recorded(node.url, consumer_timeout=4, log_stats_interval=0)
    down["until"] = asyncio.get_running_loop().time() + 8
    try:
        async with Orchestrator([Held], container):
            await wait_until(lambda: len(seen.numbers) >= 100, timeout=40)
            await asyncio.sleep(0.5)
        assert list(range(100)) == seen.numbers
        assert 0 == await checker.ready_count(f"{queue}.dlq")
        logged = [m for level in ("warning", "error") for m in log.messages(level)]
        assert [] == [m for m in logged if "channel" in m or "connection lost" in m]
        assert 2 <= len([m for m in log.messages("info") if m.startswith("held messages given")])
    finally:
        await checker.close()


async def test_a_stored_offset_that_raises_stops_the_start_and_reads_nothing(
    broker: Broker,
) -> None:
    """The database down at start: StreamStartError names the consumer; nothing is handled."""
    queue = await stream_of(broker, "stream-no-start", 10)
    seen = Seen()

    async def stored_offset(self: Any, queue: str) -> int | None:
        raise ConnectionRefusedError("the database is down")

    consumer = reader(queue, seen, stream_offset="first", stored_offset=stored_offset)
    with pytest.raises(StreamStartError, match=r"^StreamReader.stored_offset\(") as raised:
        async with Orchestrator([consumer], make_container()):
            pass
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    await asyncio.sleep(0.3)
    assert [] == seen.numbers
    assert 0 == await broker.consumer_count(queue)


async def test_a_stream_deleted_and_declared_again_is_read_from_its_start(
    broker: Broker,
) -> None:
    """Offsets of a new stream start at 0 again: nothing published to it is skipped."""
    queue = await stream_of(broker, "stream-deleted", 50)
    seen = Seen()
    container, log = recorded(log_stats_interval=0)
    async with Orchestrator([reader(queue, seen, stream_offset="first")], container):
        await wait_until(lambda: len(seen.numbers) >= 50, timeout=20)
        await broker.channel.queue_delete(queue)
        await wait_until(lambda: again_consuming(log), timeout=20)  # declared again
        await publish_numbers(broker, queue, range(100, 110))
        await wait_until(lambda: len(seen.numbers) >= 60, timeout=20)
        await asyncio.sleep(0.3)
    assert [*range(50), *range(100, 110)] == seen.numbers


def again_consuming(log: Any) -> bool:
    return any("consuming the queue again" in m for m in log.messages("warning"))

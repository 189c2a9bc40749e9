"""Consumers writing to the real PostgreSQL through the container's pool, on the real broker:
bad rows dead-lettered alone with the database's reason, duplicates acked, an unreachable
database paused through, and a worker killed between commit and ack applied once with the
bulk inbox."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector.wiring import Provide

from framework import BulkConsumer, ConfigurationError, Message, Orchestrator
from framework.core.headers import ERROR_HEADER
from framework.sinks import InboxPruning, PostgresSink
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded
from tests.postgres import execute, fetch_values, orders_table, postgres_dsn
from tests.proxy import TcpProxy

__all__ = ["postgres_dsn"]
pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def table(postgres_dsn: str) -> AsyncIterator[str]:
    """orders(id primary key, amount positive), of the test's own."""
    async with orders_table(
        postgres_dsn,
        "id bigint PRIMARY KEY, amount numeric NOT NULL "
        "CONSTRAINT amount_positive CHECK (amount > 0)",
    ) as name:
        yield name


def orders_consumer(queue: str, table: str, bulk_size: int = 10) -> type[BulkConsumer]:
    sink = PostgresSink(table, ("id", "amount"), conflict=("id",))

    class Orders(BulkConsumer):
        queues = [queue]
        flush_interval = 0.3
        max_retries = 1
        outage_backoff_max = 1

        async def handle(
            self, messages: list[Message[Any]], pool: Any = Provide["postgres"]
        ) -> None:
            await sink.write(pool, messages)

    Orders.bulk_size = bulk_size
    return Orders


async def publish_orders(broker: Broker, queue: str, amounts: dict[int, int]) -> None:
    for number, amount in amounts.items():
        await broker.publish(queue, {"id": number, "amount": amount}, message_id=str(number))


async def test_one_bad_row_is_dead_lettered_alone_with_the_databases_reason(
    broker: Broker, table: str, postgres_dsn: str
) -> None:
    """20 orders, one with a negative amount: 19 rows, one dead letter naming the constraint."""
    queue = broker.queue_name("pg-bad-row")
    container, _ = recorded(AMQP_URL, postgres_dsn=postgres_dsn, log_stats_interval=0)
    amounts = dict.fromkeys(range(20), 10)
    amounts[7] = -1
    async with Orchestrator([orders_consumer(queue, table, bulk_size=20)], container):
        await publish_orders(broker, queue, amounts)
        await wait_until(lambda: broker.ready_count(f"{queue}.dlq"))
        await wait_until(lambda: count_is(postgres_dsn, table, 19))
    stored = await fetch_values(postgres_dsn, f"SELECT id FROM {table} ORDER BY id")
    assert [n for n in range(20) if n != 7] == stored
    [letter] = await broker.drain(f"{queue}.dlq")
    assert {"id": 7, "amount": -1} == json.loads(letter.body)
    reason = str(letter.headers[ERROR_HEADER])
    assert "23514" in reason
    assert "amount_positive" in reason
    assert 0 == await broker.ready_count(queue)


async def test_a_duplicate_key_is_acked_not_dead_lettered(
    broker: Broker, table: str, postgres_dsn: str
) -> None:
    """Orders 0-4 stored before; 0-9 arrive: 10 rows, the first five unchanged, no dead letter."""
    await execute(postgres_dsn, f"INSERT INTO {table} SELECT g, 1 FROM generate_series(0, 4) g")
    queue = broker.queue_name("pg-duplicate")
    container, _ = recorded(AMQP_URL, postgres_dsn=postgres_dsn, log_stats_interval=0)
    async with Orchestrator([orders_consumer(queue, table)], container) as orchestrator:
        await publish_orders(broker, queue, dict.fromkeys(range(10), 5))
        await wait_until(lambda: orchestrator.runners[0].engine.bulks_handled >= 1)
        await wait_until(lambda: count_is(postgres_dsn, table, 10))
        await wait_until(lambda: orchestrator.runners[0].engine.idle)
    amounts = await fetch_values(postgres_dsn, f"SELECT amount FROM {table} ORDER BY id")
    assert [1] * 5 + [5] * 5 == amounts
    assert 0 == await broker.ready_count(f"{queue}.dlq")
    assert 0 == await broker.ready_count(queue)


async def test_an_unreachable_database_pauses_and_dead_letters_nothing(
    broker: Broker, table: str, postgres_dsn: str
) -> None:
    """PostgreSQL cut off for 4 s: the consumer pauses, nothing dead-lettered, all stored after."""
    proxy = TcpProxy(upstream_port=5432)
    await proxy.start()
    proxy.refusing = True
    dsn = postgres_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    queue = broker.queue_name("pg-down")
    container, log = recorded(AMQP_URL, postgres_dsn=dsn, log_stats_interval=0)
    try:
        async with Orchestrator([orders_consumer(queue, table)], container) as orchestrator:
            await publish_orders(broker, queue, dict.fromkeys(range(50), 1))
            await wait_until(lambda: orchestrator.runners[0].engine.paused)
            await asyncio.sleep(4)
            dead_while_down = await broker.ready_count(f"{queue}.dlq")
            proxy.refusing = False
            await wait_until(lambda: count_is(postgres_dsn, table, 50), timeout=30)
            await wait_until(lambda: orchestrator.runners[0].engine.idle)
    finally:
        await proxy.close()
    assert 0 == dead_while_down
    assert 0 == await broker.ready_count(f"{queue}.dlq")
    assert list(range(50)) == await fetch_values(
        postgres_dsn, f"SELECT id FROM {table} ORDER BY id"
    )
    assert ["sink unavailable: consumer paused"] == [
        m for m in log.messages("warning") if "paused" in m
    ]


async def count_is(dsn: str, table: str, expected: int) -> bool:
    return [expected] == await fetch_values(dsn, f"SELECT count(*) FROM {table}")


async def test_asking_for_postgres_without_a_dsn_fails_the_start(
    broker: Broker, table: str
) -> None:
    """No BULKWORKER_POSTGRES_DSN: the start fails naming the consumer and the variable."""
    container, _ = recorded(AMQP_URL, log_stats_interval=0)
    consumer = orders_consumer(broker.queue_name("pg-no-dsn"), table)
    with pytest.raises(
        ConfigurationError, match=r"Orders.handle parameter 'pool'.*BULKWORKER_POSTGRES_DSN"
    ):
        async with Orchestrator([consumer], container):
            pass


async def test_the_pruning_task_runs_with_the_containers_pool(
    broker: Broker, postgres_dsn: str
) -> None:
    """InboxPruning declared in an app: run at start with the pool, the settings and the logger."""
    inbox_table = f"inbox_{uuid.uuid4().hex[:8]}"
    container, log = recorded(AMQP_URL, postgres_dsn=postgres_dsn, log_stats_interval=0)

    class Prune(InboxPruning):
        run_at_startup = True
        table = inbox_table

    async with Orchestrator([Prune], container):
        await wait_until(lambda: "inbox pruned" in log.messages("info"))
    assert [0] == await fetch_values(postgres_dsn, f"SELECT count(*) FROM {inbox_table}")


KILLED_APP = """
import os, signal
from typing import Any
from dependency_injector.wiring import Provide
from framework import BulkConsumer, Message
from framework.sinks import BulkInbox, PostgresSink

EVENTS = PostgresSink(os.environ["KILL_TABLE"], ("id",))


class Events(BulkConsumer):
    queues = [os.environ["KILL_QUEUE"]]
    bulk_size = 20
    flush_interval = 0.3
    inbox = BulkInbox(table=os.environ["KILL_TABLE"] + "_inbox")

    async def handle(self, messages: list[Message[Any]], pool: Any = Provide["postgres"]) -> None:
        if os.environ["KILL_INBOX"] == "on":
            async with self.inbox.transaction(pool, messages) as admitted:
                await EVENTS.write(admitted.connection, admitted.messages)
        else:
            await EVENTS.write(pool, messages)
        print("committed", len(messages), flush=True)
        if not os.path.exists(os.environ["KILL_MARK"]):
            open(os.environ["KILL_MARK"], "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # after the commit, before any ack
"""


@pytest.mark.parametrize("inbox", ["on", "off"])
async def test_a_kill_between_commit_and_ack_with_and_without_the_inbox(
    broker: Broker, postgres_dsn: str, tmp_path: Path, inbox: str
) -> None:
    """SIGKILL after the commit, then a restart: one row per message with the inbox, two without."""
    queue = broker.queue_name("pg-killed")
    table = f"events_{uuid.uuid4().hex[:8]}"
    await execute(postgres_dsn, f"CREATE TABLE {table} (id bigint NOT NULL)")
    package = tmp_path / "killed_app"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(KILLED_APP))
    environment = {
        **os.environ,
        "KILL_QUEUE": queue,
        "KILL_TABLE": table,
        "KILL_INBOX": inbox,
        "KILL_MARK": str(tmp_path / "killed-once"),
        "BULKWORKER_AMQP_URL": AMQP_URL,
        "BULKWORKER_POSTGRES_DSN": postgres_dsn,
        "BULKWORKER_LOG_FORMAT": "json",
        "BULKWORKER_SHUTDOWN_TIMEOUT": "5",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
    }
    await broker.declare(queue)
    await publish_orders(broker, queue, dict.fromkeys(range(20), 1))
    first = await start(environment)
    assert -signal.SIGKILL == await asyncio.wait_for(first.wait(), 60)
    assert [20] == await fetch_values(postgres_dsn, f"SELECT count(*) FROM {table}")
    second = await start(environment)
    try:
        await wait_until(lambda: queue_is_empty(broker, queue), timeout=30)
        await asyncio.sleep(2)  # the redelivered bulk handled and acked
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    rows = await fetch_values(postgres_dsn, f"SELECT id FROM {table} ORDER BY id")
    copies = 1 if inbox == "on" else 2
    assert sorted(list(range(20)) * copies) == rows
    assert 0 == await broker.ready_count(queue)
    assert 0 == await broker.ready_count(f"{queue}.dlq")


async def queue_is_empty(broker: Broker, queue: str) -> bool:
    return 0 == await broker.ready_count(queue)


async def start(environment: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "framework.cli",
        "run",
        "killed_app",
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_the_containers_pool_is_closed_on_shutdown(broker: Broker, postgres_dsn: str) -> None:
    """The pool a consumer was given is closed when the orchestrator stops."""
    given: list[Any] = []

    class Holder(BulkConsumer):
        queues = [broker.queue_name("pg-pool")]

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

        def __init__(self, pool: Any = Provide["postgres"]) -> None:
            given.append(pool)

    container, _ = recorded(AMQP_URL, postgres_dsn=postgres_dsn, log_stats_interval=0)
    async with Orchestrator([Holder], container):
        [pool] = given
        assert 1 == await pool.fetchval("SELECT 1")
    assert pool.is_closing()

"""Several connections in one worker: two vhosts of the shared broker, each on its own."""

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from dependency_injector.wiring import Provide

from framework import BulkConsumer, ConsumerDefinitionError, Message, Orchestrator
from framework.wiring.resources import Publishers
from tests.broker import wait_until
from tests.conftest import recorded
from tests.proxy import TcpProxy
from tests.test_cli import run_cli


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", *arguments], check=True, capture_output=True, timeout=60)


@pytest.fixture
def vhosts() -> Iterator[tuple[str, str]]:
    """Two vhosts of the shared broker, made for the test and deleted after it."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"bw-shop-{suffix}", f"bw-audit-{suffix}")
    for name in names:
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    try:
        yield names
    finally:
        for name in names:
            rabbitmqctl("delete_vhost", name)


def url(vhost: str, port: int = 5672) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/{vhost}"


async def publish(vhost: str, queue: str, numbers: range) -> None:
    connection = await aio_pika.connect(url(vhost))
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for n in numbers:
            body = f'{{"n": {n}}}'.encode()
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json"), routing_key=queue
            )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_two_vhosts_and_losing_one_does_not_stop_the_other(
    vhosts: tuple[str, str], proxy: TcpProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example app on two vhosts; the audit connection is cut, orders keep flowing."""
    from examples import two_vhosts

    shop, audit = vhosts
    output = tmp_path / "out"
    monkeypatch.setattr(two_vhosts, "OUTPUT", str(output))
    container, _ = recorded(url(shop), reconnect_max_delay=0.5)
    container.config.amqp_urls.from_value({"audit": url(audit, proxy.port)})
    orchestrator = Orchestrator(two_vhosts, container)
    async with orchestrator:
        await publish(shop, "orders", range(20))
        await publish(audit, "audit-events", range(20))
        await wait_until(lambda: len(lines(output)) == 40, timeout=20)
        assert {"default", "audit"} == {name for name, _, _ in orchestrator.connections()}
        proxy.refusing = True
        proxy.cut()
        await publish(shop, "orders", range(20, 40))
        await publish(audit, "audit-events", range(20, 40))
        await wait_until(lambda: len([x for x in lines(output) if x.startswith("order")]) == 40)
        assert 20 == len([x for x in lines(output) if x.startswith("audit")])
        proxy.refusing = False
        await wait_until(lambda: len(lines(output)) == 80, timeout=30)
    audited = sorted(int(x.split()[1]) for x in lines(output) if x.startswith("audit"))
    assert list(range(40)) == audited


def test_an_unknown_connection_fails_before_connecting_naming_the_variable() -> None:
    """A consumer on a connection with no URL: a definition error naming the variable."""
    result = run_cli("list", "examples.two_vhosts")
    assert 0 == result.returncode, result.stderr
    assert "audit" in result.stdout
    checked = run_cli("check", "examples.two_vhosts")
    assert 1 == checked.returncode
    assert (
        "AuditEvents.connection is 'audit', but BULKWORKER_AMQP_URL_AUDIT is not set"
        in checked.stderr
    )


def test_a_connection_name_is_checked_at_class_definition() -> None:
    """Names are lower case, as their variable is derived from them."""
    with pytest.raises(ConsumerDefinitionError, match=r"Bad\.connection must name"):

        class Bad(BulkConsumer):
            queues = ["bad"]
            connection = "Analytics!"

            async def handle(self, messages: list[Message[Any]]) -> None: ...


async def test_publishers_give_the_publisher_of_a_name(vhosts: tuple[str, str]) -> None:
    """A handler publishes on the audit vhost through `publishers.of("audit")`."""
    shop, audit = vhosts
    await publish(audit, "audit-copies", range(0))
    received: list[int] = []

    class Copier(BulkConsumer):
        queues = ["orders-to-copy"]
        flush_interval = 0.1

        async def handle(
            self, messages: list[Message[Any]], publishers: Publishers = Provide["publishers"]
        ) -> None:
            audit_publisher = await publishers.of("audit")
            for message in messages:
                await audit_publisher.publish(message.body, routing_key="audit-copies")
            received.extend(m.body["n"] for m in messages)

    container, _ = recorded(url(shop))
    container.config.amqp_urls.from_value({"audit": url(audit)})
    await publish(shop, "orders-to-copy", range(5))
    async with Orchestrator([Copier], container):
        await wait_until(lambda: len(received) == 5)
    connection = await aio_pika.connect(url(audit))
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue("audit-copies", durable=True, passive=True)
        assert 5 == queue.declaration_result.message_count


async def test_dlq_show_on_a_named_connection(vhosts: tuple[str, str]) -> None:
    """`dlq show --connection audit` reads the dead-letter queue on that vhost."""
    _, audit = vhosts
    await publish(audit, "audit-events.dlq", range(2))
    result = await asyncio.to_thread(
        run_cli,
        "dlq",
        "show",
        "audit-events",
        "--connection",
        "audit",
        BULKWORKER_AMQP_URL_AUDIT=url(audit),
    )
    assert 0 == result.returncode, result.stderr
    assert "2 of 2 dead letters in 'audit-events.dlq' shown" in result.stdout
    missing = await asyncio.to_thread(run_cli, "dlq", "show", "x", "--connection", "nowhere")
    assert "connection 'nowhere' has no URL: set BULKWORKER_AMQP_URL_NOWHERE" in missing.stderr

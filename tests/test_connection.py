"""Connecting: refusals fail at once, unreachable nodes are retried, a cut is logged once."""

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiormq.exceptions import ConnectionClosed
from yarl import URL

from framework import BrokerUnreachableError, ConfigurationError, Container
from framework.amqp.connection import connect, redact, refusal
from framework.amqp.urls import split_amqp_urls
from framework.config.deployment import load_environment
from framework.testing import RecordingLog
from tests.broker import AMQP_URL, Broker, wait_until
from tests.proxy import TcpProxy
from tests.test_cli import BULKWORKER, ROOT, environment

BAD_URLS = [
    pytest.param(
        "amqp://guest:guest@127.0.0.1:5672/no-such-vhost",
        "vhost 'no-such-vhost' does not exist",
        id="missing-vhost",
    ),
    pytest.param(
        "amqp://guest:hunter2@127.0.0.1:99999/",
        "BULKWORKER_AMQP_URL: 'amqp://guest:******@127.0.0.1:99999/' is not a RabbitMQ URL "
        "(Port out of range 0-65535)",
        id="port-99999",
    ),
    pytest.param(
        "http://guest:hunter2@127.0.0.1:5672/",
        "the scheme must be amqp or amqps, not 'http'",
        id="http-scheme",
    ),
    pytest.param(
        "amqp://guest:hunter2@[::1/", "is not a RabbitMQ URL (Invalid IPv6 URL)", id="unparsable"
    ),
    pytest.param(
        "amqp://guest:hunter2@127.0.0.1:5672/",
        "login refused (ACCESS_REFUSED",
        id="wrong-password",
    ),
    pytest.param(
        f"{AMQP_URL},amqp://guest:hunter2@127.0.0.1:5672:1/",
        "'amqp://guest:******@127.0.0.1:5672:1/' is not a RabbitMQ URL",
        id="one-bad-node-of-several",
    ),
    pytest.param(
        f"{AMQP_URL},", "must be one or more comma-separated URLs", id="empty-node-in-list"
    ),
]


@pytest.mark.parametrize(("url", "cause"), BAD_URLS)
def test_a_wrong_url_fails_at_once_with_one_line(url: str, cause: str) -> None:
    """A refused or malformed URL: exit 1 within seconds, one line with the cause, no password."""
    started = time.monotonic()
    result = subprocess.run(
        [*BULKWORKER, "run", "tests.apps.envconsumer"],
        cwd=ROOT,
        env=environment(
            BULKWORKER_AMQP_URL=url, BULKWORKER_CONNECT_TIMEOUT="30", TEST_OUTPUT="/dev/null"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert (1, 1) == (result.returncode, len(lines)), result.stderr
    assert lines[0].startswith("bulkworker: error: ")
    assert cause in lines[0]
    assert "hunter2" not in result.stderr + result.stdout
    assert "RabbitMQ unreachable, retrying" not in result.stdout  # no retries
    # Well short of the 30 s connect timeout it would have spent retrying; a process
    # start alone takes seconds on a busy machine.
    assert elapsed < 15


def test_settings_name_the_variable_of_a_malformed_url() -> None:
    """Loading the settings already rejects a bad URL, naming BULKWORKER_AMQP_URL."""
    environ = {"BULKWORKER_AMQP_URL": "amqp://guest:secret@rabbit:70000/"}
    with pytest.raises(ConfigurationError, match=r"^BULKWORKER_AMQP_URL: .*rabbit:70000") as caught:
        load_environment(Container().config, environ=environ)
    assert "secret" not in str(caught.value)


def test_several_urls_are_the_nodes_of_a_cluster_in_order() -> None:
    """A comma-separated list gives each node's URL, in order, spaces around commas ignored."""
    nodes = split_amqp_urls("amqp://u:p@a:5672/vh, amqps://u:p@b:5671/vh ,amqp://c/")
    expected = [("amqp", "a", 5672), ("amqps", "b", 5671), ("amqp", "c", None)]
    assert expected == [(url.scheme, url.host, url.explicit_port) for url in nodes]


def test_every_password_of_a_cluster_url_is_masked() -> None:
    """Each node's password is masked, an '@' in it too, even in a URL that does not parse."""
    url = "amqp://u:p@ss@a:5672/vh,amqp://u:s3cret@b:99999/vh,amqp://c/"
    expected = "amqp://u:******@a:5672/vh,amqp://u:******@b:99999/vh,amqp://c/"
    assert expected == redact(url)


async def test_a_refused_vhost_is_not_retried() -> None:
    """connect() raises at once on a missing vhost, without a retry line."""
    log = RecordingLog()
    started = asyncio.get_running_loop().time()
    with pytest.raises(BrokerUnreachableError, match="vhost 'nowhere' does not exist"):
        await connect(AMQP_URL + "nowhere", log, purpose="consuming", connect_timeout=30)
    assert asyncio.get_running_loop().time() - started < 5
    assert [] == log.messages("warning")


@pytest.mark.parametrize(
    ("reply_text", "final"),
    [
        ("NOT_ALLOWED - vhost shop not found", True),
        ("NOT_ALLOWED - access to vhost 'shop' refused for user 'worker'", True),
        ("NOT_ALLOWED - vhost shop is down", False),
        (
            "NOT_ALLOWED - access to vhost 'shop' refused for user 'worker': "
            "connection limit (10) is reached",
            False,
        ),
    ],
)
def test_only_a_lasting_refusal_is_final(reply_text: str, final: bool) -> None:
    """A missing vhost or a forbidden one is final; a vhost down or a full limit is retried."""
    error = ConnectionClosed(530, reply_text)
    assert final == (refusal(error, URL("amqp://worker@rabbit/shop")) is not None)


async def test_the_first_node_that_answers_is_used(broker: Broker) -> None:
    """With the first node down, the second is used; one retry-free start, logged once."""
    log = RecordingLog()
    url = f"amqp://guest:guest@127.0.0.1:1/,{AMQP_URL}"
    connection = await connect(url, log, purpose="consuming", connect_timeout=30)
    try:
        assert "127.0.0.1:5672" in str(connection)
    finally:
        await connection.close()
    assert ["connected to RabbitMQ"] == log.messages("info")
    assert [] == log.messages("warning")


async def test_a_lost_connection_moves_on_to_the_next_node(proxy: TcpProxy) -> None:
    """Cut on node A: the connection comes back on node B, logged as one lost and one restored."""
    second = TcpProxy()
    await second.start()
    log = RecordingLog()
    try:
        connection = await connect(
            f"{proxy.url},{second.url}", log, purpose="consuming", connect_timeout=10
        )
        try:
            channel = await connection.channel()
            proxy.cut()
            await wait_until(lambda: "RabbitMQ connection restored" in log.messages("info"))
            await channel.declare_queue("", exclusive=True)  # usable again
            assert (1, 1) == (proxy.connections, second.connections)
            assert f":{second.port}/" in str(connection)
        finally:
            await connection.close()
    finally:
        await second.close()
    assert ["RabbitMQ connection lost: reconnecting"] == log.messages("warning")
    lost = next(
        extra for level, msg, extra in log.records if msg.startswith("RabbitMQ connection lost")
    )
    assert f":{proxy.port}/" in lost["url"]


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_a_cut_logs_one_warning_per_connection_and_no_library_errors(
    broker: Broker, proxy: TcpProxy, tmp_path: Path
) -> None:
    """`bulkworker run` through a cut: one 'lost' WARNING and one 'restored' line per connection."""
    queue = broker.queue_name("cut-noise")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [*BULKWORKER, "run", "tests.apps.envconsumer"],
            cwd=ROOT,
            env=environment(
                BULKWORKER_AMQP_URL=proxy.url, TEST_QUEUE=queue, TEST_OUTPUT="/dev/null"
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_until(lambda: "consumer started" in log_path.read_text(), timeout=30)
            proxy.cut()
            await wait_until(lambda: log_path.read_text().count("connection restored") == 2)
            await wait_until(lambda: "consuming again" in log_path.read_text())
            await asyncio.sleep(1)  # any late library line would be written by now
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    records = json_lines(log_path)
    events = sorted(
        (r["msg"], r["level"], r.get("for"))
        for r in records
        if r["msg"].startswith("RabbitMQ connection")
    )
    assert [
        ("RabbitMQ connection lost: reconnecting", "WARNING", "consuming"),
        ("RabbitMQ connection lost: reconnecting", "WARNING", "publishing"),
        ("RabbitMQ connection restored", "INFO", "consuming"),
        ("RabbitMQ connection restored", "INFO", "publishing"),
    ] == events
    assert [] == [r for r in records if r["level"] == "ERROR"]
    assert [] == [
        r["msg"] for r in records if r.get("logger", "").startswith(("aiormq", "aio_pika"))
    ]


def test_a_command_waiting_for_the_broker_prints_only_its_own_lines() -> None:
    """`dlq show` with the broker down: its retry warnings, one error, no client library
    noise, and no instant retries as the connect timeout runs out."""
    result = subprocess.run(
        [*BULKWORKER, "dlq", "show", "items"],
        cwd=ROOT,
        env=environment(
            BULKWORKER_AMQP_URL="amqp://guest:guest@127.0.0.1:1/", BULKWORKER_CONNECT_TIMEOUT="2"
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert 1 == result.returncode
    *retries, error = result.stderr.splitlines()
    assert error.startswith("bulkworker: error: cannot connect to RabbitMQ")
    pauses = [json.loads(line)["retry_in"] for line in retries]
    assert 2 <= len(pauses) <= 4, result.stderr
    assert all(pause >= 0.05 for pause in pauses), pauses

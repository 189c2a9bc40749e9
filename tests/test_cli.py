"""The `bulkworker` command in a real process: clear startup errors, clean shutdown."""

import contextlib
import json
import os
import pty
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.broker import AMQP_URL, Broker, wait_until

ROOT = Path(__file__).resolve().parent.parent
BULKWORKER = [sys.executable, "-m", "framework.cli"]


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEST_")}
    env.update({"BULKWORKER_AMQP_URL": AMQP_URL, "BULKWORKER_LOG_LEVEL": "INFO", **extra})
    return env


def run_cli(*arguments: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BULKWORKER, *arguments],
        cwd=ROOT,
        env=environment(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_env_worker(stderr: Any = subprocess.PIPE, **env: str) -> subprocess.Popen[bytes]:
    """`bulkworker run tests.apps.envconsumer` in its own process, configured by ``env``."""
    return subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.envconsumer"],
        cwd=ROOT,
        env=environment(**env),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux): a supervisor's workers, in their own groups."""
    found = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in map(int, listing.read_text().split()):
                found += [child, *descendants(child)]
    return found


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    """After a failed assertion, leave no worker behind, nor the workers it supervised."""
    if process.poll() is None:
        for pid in descendants(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.kill()
    # Also when it has exited: communicate closes the pipes, which would otherwise leak.
    process.communicate()


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert 1 == result.returncode
    lines = result.stderr.strip().splitlines()
    assert 1 == len(lines), result.stderr
    assert lines[0].startswith("bulkworker: error: ")
    assert expected in lines[0]


def test_unreachable_broker_exits_with_one_line() -> None:
    """No RabbitMQ at the URL: exit 1, one line naming the URL without its password."""
    result = run_cli(
        "run",
        "tests.apps.envconsumer",
        BULKWORKER_AMQP_URL="amqp://guest:hunter2@127.0.0.1:1/",
        BULKWORKER_CONNECT_TIMEOUT="1.5",
        TEST_OUTPUT="/dev/null",
    )
    assert_one_line_error(result, "cannot connect to RabbitMQ at amqp://guest:******@127.0.0.1:1/")
    assert "attempts in 1.5s: start RabbitMQ or point BULKWORKER_AMQP_URL at it" in result.stderr
    retries = [json.loads(line) for line in result.stdout.splitlines()]
    attempts = [
        r["attempt"]
        for r in retries
        if r["msg"] == "RabbitMQ unreachable, retrying" and r["for"] == "consuming"
    ]
    assert attempts[:2] == [1, 2]
    assert "hunter2" not in result.stderr + result.stdout


async def test_missing_queue_exits_with_one_line(broker: Broker) -> None:
    """declare = False and no such queue: exit 1, one line naming the queue."""
    queue = broker.queue_name("cli-missing")
    result = run_cli(
        "run", "tests.apps.envconsumer", TEST_QUEUE=queue, TEST_DECLARE="0", TEST_OUTPUT="/dev/null"
    )
    assert_one_line_error(result, f"queue '{queue}' does not exist")


async def test_queue_with_other_arguments_exits_with_one_line(broker: Broker) -> None:
    """A queue declared with other arguments: exit 1, one line with the broker's reason."""
    queue = broker.queue_name("cli-mismatch")
    await broker.declare(queue, **{"x-max-length": 5})
    result = run_cli(
        "run",
        "tests.apps.envconsumer",
        TEST_QUEUE=queue,
        TEST_ARGUMENTS='{"x-max-length": 10}',
        TEST_OUTPUT="/dev/null",
    )
    assert_one_line_error(result, "inequivalent arg 'x-max-length'")


def test_invalid_consumer_exits_with_one_line() -> None:
    """A misspelt setting: exit 1, one line naming class and attribute."""
    result = run_cli("run", "tests.apps.misspelled")
    assert_one_line_error(result, "Misspelled.bulksize is not a consumer setting")


def test_unknown_package_exits_with_one_line() -> None:
    """A package that does not exist: exit 1, one line."""
    result = run_cli("run", "no_such_package_here")
    assert_one_line_error(result, "cannot import consumers from 'no_such_package_here'")


def test_list_prints_effective_settings() -> None:
    """`bulkworker list` shows queues, bulk size, prefetch, flush interval and actions."""
    result = run_cli("list", "tests.apps.envconsumer", TEST_QUEUE="q.listed", TEST_BULK_SIZE="25")
    assert 0 == result.returncode, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header.split() == [
        "consumer",
        "queues",
        "bulk_size",
        "prefetch",
        "flush_interval",
        "on_success",
        "on_exception",
        "declare",
        "queue_arguments",
        "dead_letter_queue",
        "max_retries",
        "retry_delay",
        "outage_backoff",
        "max_concurrent_bulks",
        "connection",
        "partitions",
    ]
    expected = ["EnvConsumer", "q.listed", "25", "50", "600s", "ACK", "REQUEUE", "True", "-"]
    assert [*expected, "{queue}.dlq", "5", "0s", "1s", "1", "default", "None"] == row.split()


@pytest.mark.parametrize("command", [[], ["run"], ["list"]])
def test_help(command: list[str]) -> None:
    """Every command has --help."""
    result = run_cli(*command, "--help")
    assert 0 == result.returncode
    assert "usage: bulkworker" in result.stdout


def read_terminal(controller: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the worker closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.mark.parametrize("stdout_kind", ["file", "pipe", "tty"])
async def test_sigterm_hands_over_the_partial_bulk_and_exits_zero(
    broker: Broker, tmp_path: Path, stdout_kind: str
) -> None:
    """`bulkworker run` with stdout a file, pipe or terminal: JSON logs, last flush on SIGTERM."""
    queue = broker.queue_name("cli-run")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(25))
    output, log_path = tmp_path / "handled.jsonl", tmp_path / "worker.log"
    controller = -1
    stdout: Any = subprocess.PIPE
    if stdout_kind == "file":
        stdout = log_path.open("wb")
    elif stdout_kind == "tty":
        controller, stdout = pty.openpty()
    process = subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.envconsumer"],
        cwd=ROOT,
        env=environment(TEST_QUEUE=queue, TEST_OUTPUT=str(output), TEST_BULK_SIZE="10"),
        stdout=stdout,
        stderr=subprocess.PIPE,
    )
    if stdout_kind == "file":
        stdout.close()
    elif stdout_kind == "tty":
        os.close(stdout)
    try:
        await wait_until(lambda: output.exists() and len(output.read_text().splitlines()) == 20)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        log = read_terminal(controller) if stdout_kind == "tty" else ""
        piped, errors = process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert 0 == process.returncode
    assert b"" == errors
    log = {
        "file": log_path.read_text() if log_path.exists() else "",
        "pipe": (piped or b"").decode(),
        "tty": log,
    }[stdout_kind]
    handled = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert list(range(25)) == handled
    if stdout_kind == "tty":  # a terminal gets console lines, anything else JSON
        assert re.search(r"\d\d:\d\d:\d\d\.\d{3} INFO    bulkworker: consumer started ", log)
    else:
        records = [json.loads(line) for line in log.splitlines() if line.strip()]
        assert "consumer started" in [record["msg"] for record in records]
    assert 0 == await broker.ready_count(queue)
    assert 0 == await broker.consumer_count(queue)


async def test_second_signal_exits_at_once_and_the_broker_requeues(
    broker: Broker, tmp_path: Path
) -> None:
    """A second SIGTERM during a slow handle exits now; the unsettled bulk returns to the queue."""
    queue = broker.queue_name("cli-twice")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(5))
    started = tmp_path / "started"
    process = start_env_worker(
        TEST_QUEUE=queue,
        TEST_OUTPUT=str(tmp_path / "out"),
        TEST_STARTED=str(started),
        TEST_BULK_SIZE="5",
        TEST_HANDLE_SECONDS="60",
    )
    try:
        await wait_until(started.exists)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    finally:
        kill_if_running(process)
    assert 1 == process.returncode
    assert b"bulkworker: second signal, exiting now\n" == errors
    await wait_until(lambda: broker.ready_count(queue))
    assert 5 == await broker.ready_count(queue)
    assert not (tmp_path / "out").exists()


@pytest.mark.xdist_group("shared-queues")  # the shipped consumer's queue is "items"
async def test_run_processes_the_shipped_applications_items(broker: Broker, tmp_path: Path) -> None:
    """`bulkworker run consumers --container ...` stores published items in SQLite."""
    await broker.declare("items")
    await broker.declare("items.dlq")
    await broker.drain("items.dlq")  # the shared broker may hold an earlier run's dead letters
    ids = [f"cli-{number}" for number in range(50)]
    for item_id in ids:
        await broker.publish("items", {"id": item_id, "name": "lamp", "price": 30})
    await broker.publish("items", {"name": "no id"}, message_id="invalid")
    database = tmp_path / "items.db"
    process = subprocess.Popen(
        [*BULKWORKER, "run", "consumers", "--container", "consumers.container:AppContainer"],
        cwd=ROOT,
        env=environment(ITEMS_DB=str(database)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    def stored() -> set[str]:
        if not database.exists():
            return set()
        with contextlib.closing(sqlite3.connect(database)) as connection:
            try:
                return {row[0] for row in connection.execute("SELECT id FROM items")}
            except sqlite3.OperationalError:
                return set()

    try:
        await wait_until(lambda: set(ids) <= stored(), timeout=30)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert 0 == process.returncode
    assert b"" == errors
    invalid = [m for m in await broker.drain("items.dlq") if m.message_id == "invalid"]
    assert ["rejected"] == [m.headers["x-bulkworker-reason"] for m in invalid]


async def test_sigterm_during_a_slow_handle_finishes_it_and_the_partial_bulk(
    broker: Broker, tmp_path: Path
) -> None:
    """SIGTERM while handle runs and a partial bulk waits: both are handled, exit 0."""
    queue = broker.queue_name("cli-slow")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(8))
    started, output = tmp_path / "started", tmp_path / "handled.jsonl"
    process = start_env_worker(
        TEST_QUEUE=queue,
        TEST_OUTPUT=str(output),
        TEST_STARTED=str(started),
        TEST_BULK_SIZE="5",
        TEST_HANDLE_SECONDS="1.5",
    )
    try:
        await wait_until(started.exists)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert 0 == process.returncode
    assert b"" == errors
    assert list(range(8)) == [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert 0 == await broker.ready_count(queue)


async def test_sigkill_mid_bulk_acks_nothing_unprocessed(broker: Broker, tmp_path: Path) -> None:
    """A worker killed inside handle has acked nothing: every message is back in the queue."""
    queue = broker.queue_name("cli-kill")
    await broker.declare(queue)
    await broker.publish_ids(queue, range(12))
    started, output = tmp_path / "started", tmp_path / "handled.jsonl"
    process = start_env_worker(
        subprocess.DEVNULL,
        TEST_QUEUE=queue,
        TEST_OUTPUT=str(output),
        TEST_STARTED=str(started),
        TEST_BULK_SIZE="5",
        TEST_HANDLE_SECONDS="60",
    )
    try:
        await wait_until(started.exists, timeout=30)
        process.kill()
        process.wait(timeout=10)
    finally:
        kill_if_running(process)
    await wait_until(lambda: ready_is(broker, queue, 12))
    assert not output.exists()


async def ready_is(broker: Broker, queue: str, expected: int) -> bool:
    return expected == await broker.ready_count(queue)


def test_dlq_show_help_says_json_means_json_lines() -> None:
    """`dlq show --help` says --json prints one object per line, not an array."""
    result = run_cli("dlq", "show", "--help")
    assert 0 == result.returncode, result.stderr
    text = " ".join(result.stdout.split())
    expected = "JSON lines: one JSON object per line, a line per dead letter (not one JSON array)"
    assert expected in text

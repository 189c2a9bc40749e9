"""Logs people can read: console or flat JSON, the application's records too, one line per event."""

import json
import logging
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from framework import Actions, BulkConsumer, Message
from framework.core.engine import EngineConfig, build_engine
from framework.observe.log import build_logger, route_library_logs, unroute_library_logs
from framework.observe.log_stats import BulkLog, StatsLog
from framework.testing import ConsumerHarness, RecordingLog, make_message
from tests.broker import Broker, wait_until
from tests.test_cli import BULKWORKER, ROOT, environment, kill_if_running
from tests.test_engine import arrive, let_run, settings, started, stopped


def boom() -> ValueError:
    try:
        raise ValueError("boom")
    except ValueError as error:
        return error


async def lines_of(path: Path, level: str, log_format: str, log: Any) -> list[str]:
    with path.open("wb") as file:
        logger = build_logger(level, fd=file.fileno(), log_format=log_format)
        await log(logger)
        await logger.shutdown()
    return path.read_text().splitlines()


async def test_json_lines_are_flat_with_the_traceback_as_one_string(tmp_path: Path) -> None:
    """No paths, functions or line numbers at INFO; exc_info is the formatted traceback."""

    async def log(logger: Any) -> None:
        await logger.error("handle raised", extra={"consumer": "Items"}, exc_info=boom())

    [line] = await lines_of(tmp_path / "log", "INFO", "json", log)
    record = json.loads(line)
    assert {"logged_at", "level", "logger", "msg", "consumer", "exc_info"} == set(record)
    assert ("ERROR", "bulkworker", "handle raised") == (
        record["level"],
        record["logger"],
        record["msg"],
    )
    assert record["exc_info"].startswith("Traceback (most recent call last):")
    assert record["exc_info"].endswith("ValueError: boom")


async def test_at_debug_json_says_where_each_line_came_from(tmp_path: Path) -> None:
    """file, line and function appear only when the level is DEBUG."""

    async def log(logger: Any) -> None:
        await logger.debug("bulk handled")

    [line] = await lines_of(tmp_path / "log", "DEBUG", "json", log)
    record = json.loads(line)
    assert record["file"].endswith("test_log_format.py")
    assert "log" == record["function"]


async def test_console_lines_read_as_text_with_the_traceback_below(tmp_path: Path) -> None:
    """`time level logger: message key=value`, then the traceback's own lines."""

    async def log(logger: Any) -> None:
        await logger.warning("consumer started", extra={"consumer": "Items", "queues": ["a b"]})
        await logger.error("handle raised", exc_info=boom())

    lines = await lines_of(tmp_path / "log", "INFO", "console", log)
    pattern = r"\d\d:\d\d:\d\d\.\d{3} WARNING bulkworker: consumer started consumer=Items "
    assert re.fullmatch(pattern + r'queues=\["a b"\]', lines[0]), lines[0]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} ERROR   bulkworker: handle raised", lines[1])
    assert "Traceback (most recent call last):" == lines[2]
    assert "ValueError: boom" == lines[-1]


async def test_auto_is_console_on_a_terminal_and_json_elsewhere(tmp_path: Path) -> None:
    """BULKWORKER_LOG_FORMAT=auto: a pty gets text, a file gets JSON."""
    controller, terminal = pty.openpty()
    try:
        logger = build_logger("INFO", fd=terminal, log_format="auto")
        await logger.info("hello")
        await logger.shutdown()
        shown = os.read(controller, 4096).decode()
    finally:
        os.close(controller)
        os.close(terminal)
    assert "INFO    bulkworker: hello" in shown

    async def log(logger: Any) -> None:
        await logger.info("hello")

    [line] = await lines_of(tmp_path / "log", "INFO", "auto", log)
    assert "hello" == json.loads(line)["msg"]


def test_the_applications_own_records_join_the_log_in_its_format(tmp_path: Path) -> None:
    """An app's logging.info appears once, as JSON, with its extra; the setup is undone after."""
    path = tmp_path / "log"
    app = logging.getLogger("myapp.orders")
    root = logging.getLogger()
    level_before = root.level
    with path.open("wb") as file:
        route = route_library_logs("INFO", file.fileno(), "json")
        try:
            app.info("stored %d orders", 3, extra={"bulk": 7})
            app.debug("not shown at INFO")
            logging.getLogger("aio_pika").info("library chatter below WARNING")
        finally:
            unroute_library_logs(route)
        app.warning("after the worker: not in the worker's log")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [("myapp.orders", "INFO", "stored 3 orders", 7)] == [
        (r["logger"], r["level"], r["msg"], r["bulk"]) for r in records
    ]
    assert level_before == root.level


async def test_one_line_per_dead_letter_and_none_besides() -> None:
    """An undecodable message and a failing one: two dead letters, two lines, nothing twice."""

    class Failing(BulkConsumer):
        queues = ["failing"]
        bulk_size = 1
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise RuntimeError("sink down")

    async with ConsumerHarness(Failing) as harness:
        await harness.publish(b"{not json", content_type="application/json")
        await harness.publish({"a": 1})
        await harness.drain()
    dead = [r for r in harness.log.records if r[1] == "message dead-lettered"]
    assert [("undecodable", "failing.dlq"), ("exception", "failing.dlq")] == [
        (extra["reason"], extra["dead_letter_queue"]) for _, _, extra in dead
    ]
    assert ["handle raised"] == harness.log.messages("error")


async def test_each_bulk_gets_a_debug_line(clock, channel, log, publisher) -> None:
    """Consumer, size, flush reason, seconds and outcome counts, once per bulk."""

    async def handle(messages: list[Message[Any]]) -> None:
        messages[0].reject()

    engine = build_engine(
        settings(),
        handle,
        EngineConfig(clock=clock, log=log, publisher=publisher, watcher=BulkLog(log)),
    )
    task = await started(engine)
    for tag in (1, 2, 3):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    await stopped(engine, task)
    [(level, _, extra)] = [r for r in log.records if r[1] == "bulk handled"]
    assert "debug" == level
    assert {"consumer": "Test", "size": 3, "flush_reason": "size", "ack": 2} == {
        key: extra[key] for key in ("consumer", "size", "flush_reason", "ack")
    }
    assert 1 == extra["dead_letter"]


async def test_stats_summarise_each_busy_consumer_and_stay_quiet_when_idle(
    clock, channel, publisher
) -> None:
    """messages/s, bulks, retries and dead letters per consumer; an idle interval logs nothing."""
    log = RecordingLog()
    stats = StatsLog(log, interval=60)

    async def handle(messages: list[Message[Any]]) -> None:
        messages[0].requeue()
        messages[1].reject()

    engine = build_engine(
        settings(), handle, EngineConfig(clock=clock, log=log, publisher=publisher, watcher=stats)
    )
    task = await started(engine)
    for tag in range(1, 7):
        await arrive(engine, make_message(tag, channel=channel, tag=tag))
    await let_run()
    await stopped(engine, task)
    await stats.report(60)
    await stats.report(60)
    [(level, _, extra)] = [r for r in log.records if r[1] == "consumer stats"]
    assert "info" == level
    assert (6, 2, 2, 2, 0.1) == (
        extra["messages"],
        extra["bulks"],
        extra["retries"],
        extra["dead_letters"],
        extra["messages_per_second"],
    )


async def test_a_running_worker_logs_its_stats_and_the_apps_records(
    broker: Broker, tmp_path: Path
) -> None:
    """`bulkworker run` with a short stats interval: a summary line and the app's own line."""
    queue = broker.queue_name("log-stats")
    await broker.declare(queue)
    for number in range(5):
        await broker.publish(queue, {"n": number})
    output = tmp_path / "out"
    env = environment(
        TEST_QUEUE=queue,
        TEST_BULK_SIZE="5",
        TEST_OUTPUT=str(output),
        TEST_APP_LOG="bulk stored",
        BULKWORKER_LOG_STATS_INTERVAL="0.3",
        BULKWORKER_LOG_FORMAT="json",
    )
    process = subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.envconsumer"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append(json.loads(raw))
            if lines[-1]["msg"] == "consumer stats":
                break
        process.terminate()
        _, errors = process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert b"" == errors
    [app] = [line for line in lines if line["logger"] == "app"]
    assert ("INFO", "bulk stored", 5) == (app["level"], app["msg"], app["bulk"])
    assert 5 == lines[-1]["messages"]
    await wait_until(output.exists, timeout=5)


@pytest.fixture(autouse=True)
def _no_stray_root_handlers() -> Any:
    before = list(logging.getLogger().handlers)
    yield
    assert before == logging.getLogger().handlers

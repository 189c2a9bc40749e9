"""`bulkworker run MODULE:ATTRIBUTE` runs the application's own Orchestrator, hooks and all."""

import contextlib
import datetime
import decimal
import json
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

from tests.broker import Broker, wait_until
from tests.test_cli import (
    BULKWORKER,
    ROOT,
    assert_one_line_error,
    environment,
    kill_if_running,
    run_cli,
)

APP = "examples.orders.main:orchestrator"


def order(number: int) -> dict[str, object]:
    placed = datetime.datetime(2026, 11, 28, 8, 0, tzinfo=datetime.UTC)
    return {
        "id": str(uuid.uuid4()),
        "customer": f"c-{number % 7}",
        "quantity": 1 + number % 3,
        "unit_price": "2.50",
        "placed_at": (placed + datetime.timedelta(seconds=number)).isoformat(),
    }


def stored_orders(database: Path) -> int:
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        try:
            return int(connection.execute("SELECT count(*) FROM orders").fetchone()[0])
        except sqlite3.OperationalError:  # no table (yet)
            return 0


async def test_the_orders_app_runs_with_its_startup_hook_on_a_fresh_database(
    broker: Broker, tmp_path: Path
) -> None:
    """The hook creates the schema; every order is stored; one event per bulk; SIGTERM exits 0."""
    queue, events = broker.queue_name("orders"), broker.queue_name("orders-stored")
    database = tmp_path / "fresh.db"
    env = environment(ORDERS_QUEUE=queue, ORDERS_EVENTS_QUEUE=events, ORDERS_DATABASE=str(database))
    await broker.declare(queue)
    process = subprocess.Popen(
        [*BULKWORKER, "run", APP],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for number in range(250):
            await broker.publish(queue, order(number))
        await broker.publish(queue, {**order(0), "quantity": 0}, message_id="bad")
        await wait_until(lambda: stored_orders(database) == 250, timeout=30)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        kill_if_running(process)
    assert 0 == process.returncode, errors
    published = [json.loads(m.body) for m in await broker.drain(events)]
    assert 250 == sum(event["count"] for event in published)
    assert decimal.Decimal("1247.50") == sum(decimal.Decimal(e["total"]) for e in published)
    [bad] = await broker.drain(f"{queue}.dlq")
    assert "'quantity' must be >= 1: 0" in bad.headers["x-bulkworker-error"]


def test_list_takes_the_orchestrator_of_the_application() -> None:
    """`bulkworker list MODULE:ATTRIBUTE` lists the consumers that orchestrator runs."""
    result = run_cli("list", APP)
    assert 0 == result.returncode, result.stderr
    assert "OrdersConsumer" in result.stdout
    assert "" == result.stderr


def test_a_package_with_an_orchestrator_of_its_own_is_warned_about() -> None:
    """Naming the package runs its consumers but says the app's Orchestrator is not used."""
    result = run_cli("list", "examples.orders")
    assert 0 == result.returncode, result.stderr
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("bulkworker: warning: examples.orders.main:orchestrator is an")
    assert f"run `bulkworker list {APP}`" in warning


def test_a_wrong_target_fails_with_one_line() -> None:
    """Missing module, missing attribute, not an Orchestrator: one line each, exit 1."""
    assert_one_line_error(
        run_cli("run", "no_such_app.main:app"), "no module named 'no_such_app.main'"
    )
    assert_one_line_error(
        run_cli("run", "examples.orders.main:missing"),
        "module 'examples.orders.main' has no attribute 'missing'",
    )
    assert_one_line_error(
        run_cli("check", "examples.orders.models:Order"),
        "examples.orders.models:Order is the class Order, not an Orchestrator",
    )


def test_an_error_while_importing_the_application_is_one_line_with_its_place() -> None:
    """The application's own exception names its type, text, file and line; no traceback."""
    assert_one_line_error(
        run_cli("run", "tests.apps.broken_import:orchestrator"),
        "RuntimeError: the settings file is missing (tests/apps/broken_import.py:3)",
    )
    assert_one_line_error(
        run_cli("list", "tests.apps.broken_import"),
        "RuntimeError: the settings file is missing (tests/apps/broken_import.py:3)",
    )


def test_container_with_an_orchestrator_target_is_a_usage_error() -> None:
    """--container applies to a package; an Orchestrator brings its own container."""
    result = run_cli("run", APP, "--container", "consumers.container:AppContainer")
    assert_one_line_error(result, "--container does not apply to examples.orders.main:orchestrator")


def test_a_missing_input_file_is_one_line() -> None:
    """`bulkworker publish QUEUE FILE` with no such file: one line, no traceback."""
    result = run_cli("publish", "items", "no-such-file.jsonl")
    assert_one_line_error(result, "No such file or directory: no-such-file.jsonl")


def test_a_function_returning_an_orchestrator_is_called() -> None:
    """MODULE:FUNCTION is called without arguments; the Orchestrator it returns is used."""
    result = run_cli("list", "tests.apps.factory_app:create_orchestrator", TEST_QUEUE="q.made")
    assert 0 == result.returncode, result.stderr
    assert "EnvConsumer" in result.stdout
    assert "q.made" in result.stdout


def test_a_model_no_converter_can_read_is_one_line_in_list_and_check() -> None:
    """list and check import the classes: the definition error names class, model and field."""
    expected = "Readings.model Reading.zone: no way to read datetime.timezone"
    assert_one_line_error(run_cli("list", "tests.apps.bad_model"), expected)
    assert_one_line_error(run_cli("check", "tests.apps.bad_model"), expected)

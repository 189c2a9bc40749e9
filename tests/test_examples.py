"""The runnable examples and the main job, run as a user would run them."""

import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.broker import AMQP_URL, Broker
from tests.postgres import postgres_dsn

__all__ = ["postgres_dsn"]

# The examples use their own fixed queue names ("items", "examples.decisions"...), as a
# reader runs them: with pytest-xdist they run one at a time, on one worker, with every
# other test that touches those names.
pytestmark = pytest.mark.xdist_group("shared-queues")

ROOT = Path(__file__).resolve().parent.parent


def run_example(*arguments: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env={"BULKWORKER_AMQP_URL": AMQP_URL, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr
    return result.stdout


def test_decisions() -> None:
    """Multiples of three are dead-lettered, 4 is requeued once, the rest acked."""
    output = run_example("examples/decisions.py")
    assert "4 requeued then acked" in output
    assert "dead-lettered: 3 (rejected), 6 (rejected)" in output


def test_several_queues() -> None:
    """Both queues' messages are handled and told apart."""
    output = run_example("examples/several_queues.py")
    assert "handled per queue: {'examples.orders': 12, 'examples.refunds': 8}" in output


def test_hooks_and_state() -> None:
    """The startup hook runs before handling; the shutdown hook sees the totals."""
    output = run_example("examples/hooks_and_state.py")
    assert "startup: prices loaded\nshutdown: 7 sales, total 480\n" == output


async def test_publish_items(broker: Broker) -> None:
    """The publisher script publishes every item, confirmed, and says so."""
    queue = broker.queue_name("publish")
    output = run_example("examples/publish_items.py", "--count", "20", "--queue", queue)
    assert f"published 20 items to '{queue}'" in output
    assert 20 == await broker.ready_count(queue)


def test_main_job_stores_every_item_in_bulk(tmp_path: Path) -> None:
    """The demo publishes items and the shipped consumer stores every one of them."""
    output = run_example(str(ROOT / "examples" / "demo.py"), "--count", "2000", cwd=tmp_path)
    assert "published 2000 items to 'items'" in output
    assert "demo-items.db now holds 2000 rows" in output
    with contextlib.closing(sqlite3.connect(tmp_path / "demo-items.db")) as database:
        assert 2000 == database.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def test_typed_items() -> None:
    """Bodies become Price instances; the one that does not fit is dead-lettered with why."""
    output = run_example("examples/typed_items.py")
    assert "totals: {'EUR': 75.0, 'USD': 120.5}\n" in output
    assert "dead-lettered: chair - does not fit Price: required field missing @ $.amount" in output


def test_typed_handler_type_checks(tmp_path: Path) -> None:
    """`list[Message[Price]]` type-checks under mypy --strict; a misuse of the body does not."""
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "examples/typed_items.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert 0 == checked.returncode, checked.stdout
    misuse = tmp_path / "misuse.py"
    source = (ROOT / "examples" / "typed_items.py").read_text()
    misuse.write_text(source.replace("+ price.amount", "+ price.amount.upper()"))
    wrong = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(misuse)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert '"float" has no attribute "upper"' in wrong.stdout


def test_postgres_orders(postgres_dsn: str) -> None:
    """98 orders stored once though ten came twice; the two bad ones dead-lettered with why."""
    result = subprocess.run(
        [sys.executable, "examples/postgres_orders.py"],
        cwd=ROOT,
        env={
            "BULKWORKER_AMQP_URL": AMQP_URL,
            "BULKWORKER_POSTGRES_DSN": postgres_dsn,
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert "stored 98 orders; the inbox holds 98 message ids" == lines[0]
    assert ["order-13", "order-77"] == sorted(line.split()[1].rstrip(":") for line in lines[1:])
    assert all("23514" in line for line in lines[1:])

"""The orders application's unit tests: its own orchestrator and hooks, and no broker at all."""

import decimal
import uuid
from collections.abc import AsyncIterator

import pytest

from examples.orders.consumers import EVENTS_QUEUE, OrdersConsumer
from examples.orders.main import orchestrator
from framework.testing import ConsumerHarness


def order(number: int, quantity: int = 2) -> dict[str, object]:
    return {
        "id": str(uuid.UUID(int=number)),
        "customer": "c-1",
        "quantity": quantity,
        "unit_price": "1.25",
        "placed_at": f"2026-11-28T08:00:{number:02d}+00:00",
    }


@pytest.fixture
async def harness() -> AsyncIterator[ConsumerHarness]:
    """The application's own orchestrator in the harness, on an in-memory database."""
    settings = {"database": ":memory:", "events_queue": EVENTS_QUEUE}
    async with ConsumerHarness(
        OrdersConsumer, orchestrator=orchestrator, overrides={"app_settings": settings}
    ) as harness:
        yield harness


async def test_each_bulk_is_stored_and_announced_once(harness: ConsumerHarness) -> None:
    """The startup hook made the table; a bulk lands in SQLite and one event tells its total."""
    await harness.publish_many([order(n) for n in range(5)])
    await harness.flush()
    repository = await harness.container.repository()
    assert 5 == repository.count()
    [event] = harness.publisher.to(EVENTS_QUEUE)
    assert 5 == event["count"]
    assert "12.50" == event["total"]
    assert "2026-11-28T08:00:00+00:00" == event["first_placed_at"]


async def test_an_order_the_model_refuses_is_dead_lettered_with_the_validator_message(
    harness: ConsumerHarness,
) -> None:
    """quantity 0 never reaches the database; its dead letter says why."""
    await harness.publish(order(1, quantity=0))
    await harness.publish(order(2))
    await harness.flush()
    [refused] = harness.dead_lettered
    assert "invalid" == refused.reason
    assert "'quantity' must be >= 1: 0" in (refused.error or "")
    assert 1 == (await harness.container.repository()).count()


async def test_a_redelivered_order_is_stored_once(harness: ConsumerHarness) -> None:
    """Storing is idempotent: the same order twice is one row."""
    await harness.publish_many([order(7), order(7)])
    await harness.flush()
    assert 1 == (await harness.container.repository()).count()
    assert [decimal.Decimal("5.00")] == [
        decimal.Decimal(e["total"]) for e in harness.publisher.to(EVENTS_QUEUE)
    ]

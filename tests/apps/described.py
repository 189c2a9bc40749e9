"""Consumers with a model of every kind, a quorum queue, a named connection, and one without
a dead-letter queue, for `bulkworker asyncapi`."""

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import attrs

from framework import Actions, BulkConsumer, Message


class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"


@attrs.frozen
class Line:
    """One line of an order."""

    sku: str
    quantity: int = 1


@attrs.frozen
class Order:
    """An order, as the shop publishes it."""

    id: uuid.UUID
    placed_at: datetime.datetime
    total: decimal.Decimal
    status: Status
    paid: bool
    weight: float
    lines: list[Line]
    tags: dict[str, str]
    note: str | None = None


@dataclasses.dataclass
class Audit:
    actor: str
    at: datetime.date


class Orders(BulkConsumer):
    """Stores orders, 100 at a time."""

    queues = ["orders"]
    bulk_size = 100
    model = Order
    retry_delay = 2.0
    group_by = "x-tenant"

    async def handle(self, messages: list[Message[Order]]) -> None:
        return None


class Audits(BulkConsumer):
    queues = ["audits"]
    queue_arguments = {"x-queue-type": "quorum"}
    model = Audit
    dead_letter_queue = None
    on_exception = Actions.REJECT

    async def handle(self, messages: list[Message[Audit]]) -> None:
        return None


class Clicks(BulkConsumer):
    """Counts clicks from the analytics broker."""

    queues = ["clicks"]
    connection = "analytics"

    async def handle(self, messages: list[Message[Any]]) -> None:
        return None

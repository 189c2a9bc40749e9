"""What the orders application reads and writes: plain attrs classes."""

import datetime
import decimal
import uuid

import attrs


@attrs.frozen
class Order:
    """An order as the shop publishes it."""

    id: uuid.UUID
    customer: str
    quantity: int = attrs.field(validator=attrs.validators.ge(1))
    unit_price: decimal.Decimal = attrs.field(validator=attrs.validators.ge(decimal.Decimal(0)))
    placed_at: datetime.datetime

    @property
    def total(self) -> decimal.Decimal:
        return self.unit_price * self.quantity


@attrs.frozen
class OrdersStored:
    """The event published once a bulk of orders is stored."""

    count: int
    total: decimal.Decimal
    first_placed_at: datetime.datetime
    last_placed_at: datetime.datetime

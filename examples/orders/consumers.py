"""The orders consumer: store each bulk, then tell the world with one event."""

import os
from typing import Any

from dependency_injector.wiring import Provide

from examples.orders.models import Order, OrdersStored
from examples.orders.repository import OrderRepository
from framework import Actions, BulkConsumer, Message, Publisher

ORDERS_QUEUE = os.environ.get("ORDERS_QUEUE", "orders")
EVENTS_QUEUE = os.environ.get("ORDERS_EVENTS_QUEUE", "orders.stored")


class OrdersConsumer(BulkConsumer):
    queues = [ORDERS_QUEUE]
    model = Order
    bulk_size = 100
    flush_interval = 1.0
    on_exception = Actions.REQUEUE
    retry_delay = 5.0

    async def handle(
        self,
        messages: list[Message[Order]],
        repository: OrderRepository = Provide["repository"],
        publisher: Publisher = Provide["publisher"],
        settings: Any = Provide["app_settings"],
    ) -> None:
        orders = [message.body for message in messages]
        repository.store(orders)
        placed = sorted(order.placed_at for order in orders)
        event = OrdersStored(len(orders), sum(o.total for o in orders), placed[0], placed[-1])
        await publisher.publish(event, routing_key=settings["events_queue"])

"""Insert each bulk of orders into MongoDB with one ``insert_many``.

    BULKWORKER_MONGODB_URL=mongodb://localhost:27017 python examples/mongodb_orders.py

Needs a running MongoDB (``pip install 'bulkworker[mongodb]'``). Each order's
``_id`` is its ``order_id``: a redelivered order is a duplicate key (11000),
acked as already stored. A document the collection's validator refuses (121)
is dead-lettered with the rule it broke; a server that cannot be reached, or a
write concern the replica set cannot satisfy, pauses the consumer until it
answers again.
"""

from typing import Any

import attrs
from dependency_injector.wiring import Provide

from framework import BulkConsumer, Container, Message, Orchestrator
from framework.sinks.mongodb import insert_documents


@attrs.frozen
class Order:
    order_id: str
    customer: str
    amount: int


class OrdersArchiver(BulkConsumer):
    queues = ["orders.archive"]
    model = Order
    bulk_size = 500
    flush_interval = 2.0

    def __init__(self, mongo: Any = Provide["mongodb"]) -> None:
        self.orders = mongo["shop"]["orders"]

    async def handle(self, messages: list[Message[Order]]) -> None:
        await insert_documents(self.orders, messages, id_field="order_id")


if __name__ == "__main__":
    Orchestrator([OrdersArchiver], Container()).run()

"""Index each bulk of orders into Elasticsearch with one ``_bulk`` request.

    BULKWORKER_ELASTICSEARCH_URL=http://localhost:9200 python examples/elasticsearch_orders.py

Needs a running Elasticsearch (``pip install 'bulkworker[elasticsearch]'``).
Each order becomes a document whose ``_id`` is its ``order_id``, written with
``create``: a redelivered order answers 409 and is acked as already stored. A
document the mapping refuses is dead-lettered with Elasticsearch's reason;
throttled items are retried; a cluster that refuses everything, or cannot be
reached, pauses the consumer until it answers again.
"""

from typing import Any

import attrs
from dependency_injector.wiring import Provide

from framework import BulkConsumer, Container, Message, Orchestrator
from framework.sinks.elasticsearch import write_bulk


@attrs.frozen
class Order:
    order_id: str
    customer: str
    amount: int


class OrdersIndexer(BulkConsumer):
    queues = ["orders.search"]
    model = Order
    bulk_size = 500
    flush_interval = 2.0

    async def handle(
        self, messages: list[Message[Order]], es: Any = Provide["elasticsearch"]
    ) -> None:
        await write_bulk(es, messages, index="orders", id_field="order_id")


if __name__ == "__main__":
    Orchestrator([OrdersIndexer], Container()).run()

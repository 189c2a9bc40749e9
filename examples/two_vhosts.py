"""Two vhosts in one worker: orders on the default connection, audit events on `audit`.

    BULKWORKER_AMQP_URL=amqp://guest:guest@localhost:5672/shop \\
    BULKWORKER_AMQP_URL_AUDIT=amqp://guest:guest@localhost:5672/audit \\
    bulkworker run examples.two_vhosts

Each connection reconnects on its own: losing the audit broker stops the audit
consumer until it is back, and the orders keep flowing. Retries and dead
letters of each consumer go through the publisher of its own connection.
"""

import os
from typing import Any

from framework import BulkConsumer, Message

OUTPUT = os.environ.get("TWO_VHOSTS_OUTPUT", "two-vhosts.log")


def record(kind: str, messages: list[Message[Any]]) -> None:
    with open(OUTPUT, "a", encoding="utf-8") as output:
        for message in messages:
            output.write(f"{kind} {message.body['n']}\n")


class ShopOrders(BulkConsumer):
    queues = ["orders"]
    bulk_size = 10
    flush_interval = 0.2

    async def handle(self, messages: list[Message[Any]]) -> None:
        record("order", messages)


class AuditEvents(BulkConsumer):
    queues = ["audit-events"]
    connection = "audit"
    bulk_size = 10
    flush_interval = 0.2

    async def handle(self, messages: list[Message[Any]]) -> None:
        record("audit", messages)

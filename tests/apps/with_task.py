"""An application with a consumer and a periodic task, for `bulkworker list`."""

from typing import Any

from framework import BulkConsumer, Message, PeriodicTask


class Orders(BulkConsumer):
    queues = ["orders.with-task"]

    async def handle(self, messages: list[Message[Any]]) -> None:
        return None


class Cleanup(PeriodicTask):
    interval = 300.0
    jitter = 5.0

    async def run(self) -> None:
        return None

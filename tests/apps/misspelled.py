"""A consumer with a typo in a setting: the start must fail naming it."""

from typing import Any

from framework import BulkConsumer, Message


class Misspelled(BulkConsumer):
    queues = ["bulkworker.test.misspelled"]
    bulksize = 10

    async def handle(self, messages: list[Message[Any]]) -> None:
        pass

"""A consumer whose model has a field no converter can read."""

import datetime
from typing import Any

import attrs

from framework import BulkConsumer, Message


@attrs.frozen
class Reading:
    at: datetime.datetime
    zone: datetime.timezone


class Readings(BulkConsumer):
    queues = ["readings"]
    model = Reading

    async def handle(self, messages: list[Message[Any]]) -> None:
        return None

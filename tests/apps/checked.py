"""A consumer whose queue and arguments come from the environment, for `bulkworker check`."""

import json
import os
from typing import Any

from framework import BulkConsumer, Message


class Checked(BulkConsumer):
    queues = [os.environ.get("TEST_QUEUE", "bulkworker.test.checked")]
    declare = os.environ.get("TEST_DECLARE", "1") == "1"
    queue_arguments = json.loads(os.environ.get("TEST_ARGUMENTS", "{}"))

    async def handle(self, messages: list[Message[Any]]) -> None:
        pass

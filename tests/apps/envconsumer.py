"""A consumer configured by environment variables, for running `bulkworker` in a subprocess."""

import asyncio
import json
import logging
import os
from typing import Any

from framework import BulkConsumer, Message


class EnvConsumer(BulkConsumer):
    queues = [os.environ.get("TEST_QUEUE", "bulkworker.test.env")]
    declare = os.environ.get("TEST_DECLARE", "1") == "1"
    queue_arguments = json.loads(os.environ.get("TEST_ARGUMENTS", "{}"))
    bulk_size = int(os.environ.get("TEST_BULK_SIZE", "10"))
    flush_interval = float(os.environ.get("TEST_FLUSH_INTERVAL", "600"))

    async def handle(self, messages: list[Message[Any]]) -> None:
        if "TEST_STARTED" in os.environ:
            open(os.environ["TEST_STARTED"], "a").close()
        if "TEST_APP_LOG" in os.environ:
            logging.getLogger("app").info(os.environ["TEST_APP_LOG"], extra={"bulk": len(messages)})
        await asyncio.sleep(float(os.environ.get("TEST_HANDLE_SECONDS", "0")))
        with open(os.environ["TEST_OUTPUT"], "a") as output:
            for message in messages:
                output.write(json.dumps(message.body) + "\n")

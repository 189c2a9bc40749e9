"""A partitioned consumer configured by environment variables, for `bulkworker` subprocesses.

Each bulk is appended to ``TEST_OUTPUT`` in one write (one JSON line per
message, with the worker's pid), so that lines of several workers never mix.
"""

import asyncio
import json
import os
from typing import Any

from framework import BulkConsumer, Message


class PartitionedConsumer(BulkConsumer):
    queues = [os.environ.get("TEST_QUEUE", "bulkworker.test.partitioned")]
    partitions = int(os.environ.get("TEST_PARTITIONS", "4"))
    partition_key = "body.key"
    bulk_size = int(os.environ.get("TEST_BULK_SIZE", "20"))
    flush_interval = 0.2

    async def handle(self, messages: list[Message[Any]]) -> None:
        await asyncio.sleep(float(os.environ.get("TEST_HANDLE_SECONDS", "0")))
        if "TEST_OUTPUT" not in os.environ:
            return
        lines = "".join(
            json.dumps(
                {
                    **message.body,
                    "pid": os.getpid(),
                    "queue": message.queue,
                    "redelivered": message.redelivered,
                }
            )
            + "\n"
            for message in messages
        )
        descriptor = os.open(os.environ["TEST_OUTPUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, lines.encode())
        finally:
            os.close(descriptor)

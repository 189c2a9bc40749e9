"""A consumer whose decoder raises what TEST_DECODER_RAISES names on the body b"bad"."""

import json
import os
from typing import Any

from framework import BulkConsumer, Message

RAISES = {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}


def decoder(raw: bytes, content_type: str | None) -> Any:
    if raw == b"bad":
        raise RAISES[os.environ["TEST_DECODER_RAISES"]]()
    return raw.decode()


class ExitingDecoder(BulkConsumer):
    queues = [os.environ.get("TEST_QUEUE", "bulkworker.test.exiting-decoder")]
    bulk_size = 1
    flush_interval = 0.2
    decoder = staticmethod(decoder)

    async def handle(self, messages: list[Message[Any]]) -> None:
        with open(os.environ["TEST_OUTPUT"], "a") as output:
            output.writelines(json.dumps(message.body) + "\n" for message in messages)

"""A consumer that misbehaves as the environment says, for stop tests of `bulkworker run`.

TEST_MODE: ``swallow`` (handle ignores cancellation forever), ``cancel`` (the
consumer's worker task is cancelled from outside), ``raise`` (handle raises),
``exit`` (handle calls ``sys.exit(3)``), ``block`` (handle blocks the event loop for
ten minutes: the process no longer answers signals), else handle does nothing.
TEST_PAUSE / TEST_RESUME: the constructor touches the first file, then blocks
until the second exists (so a test can act between connecting and declaring).
"""

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from framework import Actions, BulkConsumer, Message


class Misbehaving(BulkConsumer):
    queues = [os.environ.get("TEST_QUEUE", "bulkworker.test.stops")]
    bulk_size = int(os.environ.get("TEST_BULK_SIZE", "5"))
    flush_interval = float(os.environ.get("TEST_FLUSH_INTERVAL", "0.2"))
    on_exception = Actions[os.environ.get("TEST_ON_EXCEPTION", "REQUEUE")]

    def __init__(self) -> None:
        if "TEST_PAUSE" in os.environ:
            Path(os.environ["TEST_PAUSE"]).touch()
            deadline = time.monotonic() + 20
            while not Path(os.environ["TEST_RESUME"]).exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    async def handle(self, messages: list[Message[Any]]) -> None:
        if "TEST_STARTED" in os.environ:
            Path(os.environ["TEST_STARTED"]).touch()
        mode = os.environ.get("TEST_MODE", "")
        if mode == "swallow":
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(10)
        if mode == "cancel":
            # The consumer's worker task cancelled from outside, as a bug elsewhere would.
            workers = [t for t in asyncio.all_tasks() if t.get_name() == "bulkworker:Misbehaving"]
            for worker in workers:
                if worker is not asyncio.current_task():
                    worker.cancel()
            await asyncio.sleep(1)
        if mode == "exit":
            raise SystemExit(3)
        if mode == "block":
            time.sleep(600)
        if mode == "raise":
            raise RuntimeError("refused")

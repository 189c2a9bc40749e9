"""The consumer `benchmarks/processes.py` runs with `bulkworker run --workers N`.

Each worker process writes how many messages it handled to a file of its own
after every bulk, so the benchmark can tell when all of them are done.
"""

import os
from pathlib import Path
from typing import Any

from framework import BulkConsumer, Message

COUNTS = Path(os.environ.get("BENCH_COUNTS", "."))


class BenchWorker(BulkConsumer):
    queues = [os.environ.get("BENCH_QUEUE", "bulkworker.bench")]
    bulk_size = 500
    prefetch = 1000
    flush_interval = 1.0

    def __init__(self) -> None:
        self.handled = 0
        self.count_file = COUNTS / f"worker-{os.getpid()}"

    async def handle(self, messages: list[Message[Any]]) -> None:
        self.handled += sum(1 for message in messages if message.body["id"] >= 0)
        self.count_file.write_text(str(self.handled))

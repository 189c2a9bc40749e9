"""Throughput of `bulkworker run --workers N` processes draining one queue.

Used by ``throughput.py --workers N``: the same queue of 200-byte messages is
drained by 1 worker and by N workers, each started as ``bulkworker run``. The
clock starts when the first bulk is handled (so process start-up is not
counted) and stops when every message is; the rate counts the messages handled
in between.
"""

import asyncio
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def handled(directory: Path) -> int:
    total = 0
    for path in directory.glob("worker-*"):
        try:
            total += int(path.read_text() or 0)
        except (OSError, ValueError):
            continue  # being written: read again on the next look
    return total


async def drain_with_workers(queue: str, count: int, workers: int, metrics: bool = True) -> float:
    """Messages per second that ``workers`` processes reach on ``queue`` holding ``count``."""
    with tempfile.TemporaryDirectory(prefix="bulkworker-bench-") as counts:
        directory = Path(counts)
        env = {
            **os.environ,
            "BENCH_QUEUE": queue,
            "BENCH_COUNTS": counts,
            "BULKWORKER_LOG_LEVEL": "WARNING",
            "BULKWORKER_METRICS": "on" if metrics else "off",
            "PYTHONPATH": str(ROOT),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "framework.cli",
            "run",
            "benchmarks.worker_app",
            "--workers",
            str(workers),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            first, started = await first_bulk(directory)
            while (done := handled(directory)) < count:
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
        finally:
            process.send_signal(signal.SIGTERM)
            await process.wait()
    return (done - first) / elapsed


async def first_bulk(directory: Path) -> tuple[int, float]:
    while (seen := handled(directory)) == 0:
        await asyncio.sleep(0.005)
    return seen, time.perf_counter()

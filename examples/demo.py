"""The main job, end to end: publish sample items, store them in bulk, show the result.

    python examples/demo.py [--count 10000]

Publishes the items to the ``items`` queue, runs the consumers in ``consumers/``
with the application's container until every item is in the SQLite store
(``demo-items.db``), stops gracefully and prints what was stored.
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumers.container import AppContainer
from examples.publish_items import publish_items
from framework import Orchestrator

DATABASE = "demo-items.db"


async def run_demo(count: int, patience: float) -> int:
    await publish_items(count)
    print(f"published {count} items to 'items'")
    container = AppContainer()
    started = time.monotonic()
    async with Orchestrator("consumers", container):
        store = await container.store()
        wanted = {f"item-{number}" for number in range(count)}
        while not wanted <= store.ids():
            if time.monotonic() - started > patience:
                print(f"only {len(wanted & store.ids())} of {count} items stored in {patience}s")
                return 1
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        print(f"stored {count} items in {elapsed:.1f}s; {DATABASE} now holds {store.count()} rows")
        for row in store.sample():
            print("  ", row)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Publish sample items and store them in bulk.")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=120.0)
    arguments = parser.parse_args()
    Path(DATABASE).unlink(missing_ok=True)
    os.environ["ITEMS_DB"] = DATABASE
    os.environ.setdefault("BULKWORKER_LOG_LEVEL", "ERROR")
    sys.exit(asyncio.run(run_demo(arguments.count, arguments.timeout)))


if __name__ == "__main__":
    main()

"""Publish sample items to the ``items`` queue, each confirmed by the broker.

python examples/publish_items.py --count 10000
"""

import argparse
import asyncio
import json
import os
import random

import aio_pika

AMQP_URL = os.environ.get("BULKWORKER_AMQP_URL", "amqp://guest:guest@localhost:5672/")
CONFIRM_WINDOW = 500


def sample_item(number: int) -> dict[str, object]:
    return {
        "id": f"item-{number}",
        "name": random.choice(["lamp", "chair", "desk", "shelf", "rug"]) + f" #{number}",
        "price": round(random.uniform(5, 500), 2),
    }


async def publish_items(count: int, queue: str = "items", url: str = AMQP_URL) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        for start in range(0, count, CONFIRM_WINDOW):
            # A window of publishes in flight at once, then wait for all their confirms.
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(
                            json.dumps(sample_item(number)).encode(),
                            content_type="application/json",
                            message_id=f"item-{number}",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=queue,
                    )
                    for number in range(start, min(start + CONFIRM_WINDOW, count))
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--queue", default="items")
    arguments = parser.parse_args()
    asyncio.run(publish_items(arguments.count, arguments.queue))
    print(f"published {arguments.count} items to {arguments.queue!r}")


if __name__ == "__main__":
    main()

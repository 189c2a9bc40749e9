"""Helpers for tests of partitioned consumers on RabbitMQ: the plugin, and cleaning up."""

import asyncio
import subprocess

import aio_pika

from framework.amqp.partitions import plugin_enabled
from framework.core.partitions import PLUGIN, partition_queues
from tests.broker import AMQP_URL, Broker


async def enable_hash_exchange_plugin(url: str = AMQP_URL) -> None:
    """Enable the consistent-hash exchange on the shared broker if it is not (never disabled)."""
    if await plugin_enabled(url):
        return
    enabled = await asyncio.to_thread(
        subprocess.run,
        ["rabbitmq-plugins", "enable", PLUGIN],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == enabled.returncode, enabled.stderr
    assert await plugin_enabled(url)


def partitioned_name(broker: Broker, label: str, partitions: int) -> str:
    """A queue name for a partitioned consumer; its partition queues are deleted afterwards."""
    queue = broker.queue_name(label)
    for partition in partition_queues(queue, partitions):
        broker.names.extend([partition, f"{partition}.dlq", f"{partition}.retry"])
    return queue


async def delete_exchange(broker: Broker, exchange: str) -> None:
    channel = await broker.connection.channel()
    try:
        await channel.exchange_delete(exchange)
    except aio_pika.exceptions.ChannelClosed:
        pass
    finally:
        if not channel.is_closed:
            await channel.close()

"""The consistent-hash exchange and partition queues of a partitioned consumer, on the broker.

Declaring an exchange of a type the broker does not know is a *connection*
error (``COMMAND_INVALID - unknown exchange type``): it would close the
consuming connection. So the exchange is declared on a throwaway connection
of its own. Declaring it again is also how an exchange of that name with
another type (a ``direct`` one left from before) is found: the broker refuses
with ``PRECONDITION_FAILED``.

The number of partitions is fixed once declared: adding a queue to the hash
ring moves keys from one queue to another while messages of those keys still
wait in the old one. Before declaring anything, the partition queues that
exist are looked up; another number than the consumer's is a start error.
Workers starting side by side must not take each other's half-declared ring
for another number: the last partition queue is declared first, so what
exists is fine when it is nothing, or ends with that last queue.
"""

import uuid
from typing import Any

import aiormq
from aiormq.exceptions import (
    AMQPError,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
    ConnectionCommandInvalid,
)

from framework.amqp.declarations import broker_reason, declare, declare_on_probe
from framework.core.consumer import ConsumerSettings
from framework.core.partitions import (
    BINDING_WEIGHT,
    ENABLE_PLUGIN,
    HASH_EXCHANGE_TYPE,
    partition_queue,
    partition_queues,
)
from framework.errors import BrokerPluginError, QueueError

# Counting the partition queues that exist stops here: far beyond any sensible N.
MOST_PARTITIONS_COUNTED = 1024


async def prepare_partitions(
    underlay: aiormq.abc.AbstractChannel, settings: ConsumerSettings
) -> None:
    """Check the partition count on the broker and declare each consistent-hash exchange.

    Runs before the partition queues are declared, so that a different
    number of partitions is found before declaring would add to it.
    """
    amqp = underlay.connection
    for exchange in settings.exchanges:
        problem = await partition_count_problem(amqp, exchange, settings)
        if problem is not None:
            raise QueueError(problem)
        if settings.declare:
            await declare_hash_exchange(amqp.url, exchange, settings)
            await declare_last_partition(underlay, exchange, settings)
        elif not await exchange_exists(amqp, exchange):
            raise QueueError(
                f"consistent-hash exchange {exchange!r} does not exist and "
                f"{settings.name}.declare is False: declare it, or set declare = True"
            )


async def bind_partitions(underlay: aiormq.abc.AbstractChannel, settings: ConsumerSettings) -> None:
    """Bind every partition queue to its exchange, all with the same weight (idempotent)."""
    if not settings.declare:
        return
    assert settings.partitions is not None or not settings.exchanges
    for exchange in settings.exchanges:
        for queue in partition_queues(exchange, settings.partitions or 0):
            await underlay.queue_bind(queue, exchange, routing_key=BINDING_WEIGHT)


async def declare_last_partition(
    underlay: aiormq.abc.AbstractChannel, exchange: str, settings: ConsumerSettings
) -> None:
    """Declare the last partition queue (and what it needs) before the others are."""
    assert settings.partitions is not None
    for queue, arguments, role in settings.declarations_for(
        partition_queue(exchange, settings.partitions - 1)
    ):
        await declare(underlay, queue, arguments, role, settings)


async def existing_partitions(amqp: Any, exchange: str, settings: ConsumerSettings) -> list[int]:
    """Which of ``<exchange>.p0``, ``.p1``… exist, looked up to one past the consumer's last."""
    assert settings.partitions is not None
    found = []
    for index in range(MOST_PARTITIONS_COUNTED):
        exists = await queue_exists(amqp, partition_queue(exchange, index))
        if exists:
            found.append(index)
        elif index >= settings.partitions:
            break
    return found


async def partition_count_problem(
    amqp: Any, exchange: str, settings: ConsumerSettings
) -> str | None:
    """What is wrong with the partition queues on the broker for ``settings``, or None.

    Fine: none yet, or a set whose highest is the consumer's last partition
    (all of them, or those another worker starting now has declared so far,
    the last one first). A set that stops short of it was declared for fewer
    partitions; one that goes past it, for more.
    """
    assert settings.partitions is not None
    existing = await existing_partitions(amqp, exchange, settings)
    if not existing or max(existing) == settings.partitions - 1:
        return None
    return (
        f"{settings.name}.partitions is {settings.partitions}, but the broker has "
        f"{len(existing)} partition queues of {exchange!r} ({partition_queue(exchange, 0)}, "
        f"…, {partition_queue(exchange, max(existing))}): the number of partitions is fixed "
        "once declared. To change it: stop every worker, let the partition queues drain, "
        f"delete them and the exchange {exchange!r}, then start with the new number"
    )


async def queue_exists(amqp: Any, queue: str) -> bool:
    try:
        await declare_on_probe(amqp, queue, passive=True)
    except ChannelNotFoundEntity:
        return False
    return True


async def exchange_exists(amqp: Any, exchange: str) -> bool:
    probe = await amqp.channel()
    try:
        await probe.exchange_declare(exchange, passive=True)
    except ChannelNotFoundEntity:
        return False
    finally:
        if not probe.is_closed:
            await probe.close()
    return True


async def declare_hash_exchange(url: Any, exchange: str, settings: ConsumerSettings) -> None:
    """Declare ``exchange`` (durable) on a connection of its own; say so if the plugin is off."""
    try:
        amqp = await aiormq.connect(url)
    except AMQPError as error:
        raise QueueError(f"cannot declare exchange {exchange!r}: {broker_reason(error)}") from None
    try:
        channel = await amqp.channel()
        await channel.exchange_declare(exchange, exchange_type=HASH_EXCHANGE_TYPE, durable=True)
    except ConnectionCommandInvalid as error:
        raise BrokerPluginError(plugin_missing(settings, exchange, broker_reason(error))) from None
    except ChannelPreconditionFailed as error:
        raise QueueError(
            f"exchange {exchange!r} exists with another type than {HASH_EXCHANGE_TYPE} that "
            f"{settings.name} (partitions = {settings.partitions}) needs; the broker says: "
            f"{broker_reason(error)}. Delete the exchange, or rename the queue"
        ) from None
    finally:
        if not amqp.is_closed:
            await amqp.close()


def plugin_missing(settings: ConsumerSettings, exchange: str, reason: str) -> str:
    return (
        f"{settings.name} has partitions = {settings.partitions}, but exchange {exchange!r} "
        f"cannot be declared: the broker says {reason!r}. Enable the plugin on every node: "
        f"{ENABLE_PLUGIN}"
    )


async def plugin_enabled(url: Any) -> bool:
    """Does the broker know ``x-consistent-hash``? Tried with an exchange deleted at once."""
    amqp = await aiormq.connect(url)
    name = f"bulkworker.plugin-check.{uuid.uuid4().hex}"
    try:
        channel = await amqp.channel()
        await channel.exchange_declare(name, exchange_type=HASH_EXCHANGE_TYPE, auto_delete=True)
        await channel.exchange_delete(name)
    except ConnectionCommandInvalid:
        return False
    finally:
        if not amqp.is_closed:
            await amqp.close()
    return True

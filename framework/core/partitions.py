"""Partitioned consumers: a consistent-hash exchange per queue, N queues behind it.

A consumer that sets ``partitions = N`` for ``queues = ["orders"]`` consumes
``orders.p0`` … ``orders.p{N-1}``, each declared with
``x-single-active-consumer``, and bound with equal weights to the exchange
``orders`` of type ``x-consistent-hash`` (the ``rabbitmq_consistent_hash_exchange``
plugin). A publisher sends to that exchange with the message's key as routing
key: every message of one key lands in one partition queue, and the broker
lets one consumer at a time receive from it.

``partition_key`` says where a message's key is: ``"headers.<name>"``,
``"body.<field>[.<field>…]"`` (dict keys or attributes, so a ``model``
instance works too), or a function ``(message) -> str`` — the same function
may serve as ``group_by``.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from framework.core.message import Delivery, Message
from framework.errors import PartitionKeyError

HASH_EXCHANGE_TYPE = "x-consistent-hash"
PLUGIN = "rabbitmq_consistent_hash_exchange"
ENABLE_PLUGIN = f"rabbitmq-plugins enable {PLUGIN}"
SINGLE_ACTIVE_CONSUMER = "x-single-active-consumer"
# Every partition queue gets the same share of the hash ring.
BINDING_WEIGHT = "1"
HEADER_PREFIX = "headers."
BODY_PREFIX = "body."
# The routing key is a short string: AMQP allows 255 bytes.
LONGEST_KEY = 255

KeyReader = Callable[[Message[Any]], str]


def partition_queue(queue: str, index: int) -> str:
    """The name of partition ``index`` of ``queue``: ``orders.p0``, ``orders.p1``…"""
    return f"{queue}.p{index}"


def partition_queues(queue: str, partitions: int) -> tuple[str, ...]:
    """Every partition queue of ``queue``, in order."""
    return tuple(partition_queue(queue, index) for index in range(partitions))


def partition_key_problem(value: object) -> str | None:
    """Why ``value`` is not a valid ``partition_key`` setting, or None."""
    if value is None or callable(value):
        return None
    if isinstance(value, str):
        for prefix in (HEADER_PREFIX, BODY_PREFIX):
            rest = value.removeprefix(prefix)
            if value.startswith(prefix) and rest and "" not in rest.split("."):
                return None
        return (
            "must say where the key is: 'headers.<name>', 'body.<field>' "
            f"(dotted for nested fields) or a function (message) -> str, got {value!r}"
        )
    return f"must be 'headers.<name>', 'body.<field>' or a function (message) -> str, got {value!r}"


def key_reader(partition_key: Any) -> KeyReader:
    """``partition_key`` as a function of a message, returning the routing key."""
    if isinstance(partition_key, str) and partition_key.startswith(HEADER_PREFIX):
        return header_reader(partition_key.removeprefix(HEADER_PREFIX))
    if isinstance(partition_key, str):
        return body_reader(tuple(partition_key.removeprefix(BODY_PREFIX).split(".")))

    def call(message: Message[Any]) -> str:
        return routing_key_of(partition_key(message), "the partition_key function")

    return call


def header_reader(header: str) -> KeyReader:
    def read(message: Message[Any]) -> str:
        if header not in message.headers:
            raise PartitionKeyError(f"the message has no header {header!r}")
        return routing_key_of(message.headers[header], f"header {header!r}")

    return read


def body_reader(path: tuple[str, ...]) -> KeyReader:
    def read(message: Message[Any]) -> str:
        value = message.body
        for step, field in enumerate(path):
            value = field_of(value, field, ".".join(path[: step + 1]))
        return routing_key_of(value, f"body field {'.'.join(path)!r}")

    return read


def field_of(value: Any, field: str, where: str) -> Any:
    if isinstance(value, Mapping):
        if field in value:
            return value[field]
    elif hasattr(value, field):
        return getattr(value, field)
    raise PartitionKeyError(f"the message body has no field {where!r}")


def routing_key_of(value: Any, source: str) -> str:
    """The key as the exchange hashes it: text, at most 255 bytes."""
    if value is None:
        raise PartitionKeyError(f"{source} is None: a message needs a key to be routed")
    key = value.decode() if isinstance(value, bytes) else str(value)
    if len(key.encode()) > LONGEST_KEY:
        raise PartitionKeyError(f"{source} is longer than {LONGEST_KEY} bytes: {key[:40]!r}…")
    return key


class NotDelivered:
    """The channel of a message being published: it has none yet."""

    @property
    def is_closed(self) -> bool:
        return True

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        raise PartitionKeyError("a message being published cannot be settled")

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        raise PartitionKeyError("a message being published cannot be settled")


def outgoing_message(body: Any, headers: Mapping[str, Any], exchange: str) -> Message[Any]:
    """``body`` as a ``Message`` before it is sent, for a ``partition_key`` to read."""
    return Message(
        body=body,
        raw=b"",
        queue=exchange,
        routing_key="",
        delivery=Delivery(NotDelivered(), 0),
        headers=dict(headers),
    )


def partition_route(
    consumer: Any, body: Any, headers: Mapping[str, Any], key: str | None, queue: str | None
) -> tuple[str, str]:
    """The exchange and routing key that bring ``body`` to ``consumer``'s partition for its key.

    ``consumer`` is a ``BulkConsumer`` class; ``key`` overrides its
    ``partition_key``; ``queue`` picks one of its queues when it has several.
    """
    name = consumer.__name__
    if consumer.partitions is None:
        raise PartitionKeyError(f"{name} is not partitioned (partitions is None)")
    exchange = exchange_for(name, tuple(consumer.queues), queue)
    if key is not None:
        return exchange, routing_key_of(key, "key")
    if consumer.partition_key is None:
        raise PartitionKeyError(f"{name}.partition_key is None: pass key=... to publish")
    message = outgoing_message(body, headers, exchange)
    try:
        return exchange, key_reader(consumer.partition_key)(message)
    except PartitionKeyError as error:
        raise PartitionKeyError(f"{name}.partition_key: {error}") from None
    except Exception as error:  # the user's function
        raise PartitionKeyError(
            f"{name}.partition_key raised {type(error).__name__}: {error}"
        ) from error


def exchange_for(name: str, queues: tuple[str, ...], queue: str | None) -> str:
    if queue is None and len(queues) == 1:
        return queues[0]
    if queue in queues:
        return queue
    raise PartitionKeyError(f"{name} consumes {', '.join(queues)}: pass queue= one of them")


@attrs.frozen
class PartitionShare:
    """The partitions this worker of ``workers`` registers on first, to be their active consumer.

    With ``bulkworker run --workers M``, worker ``i`` consumes partitions
    ``p`` with ``p % M == i`` at once, and the others only once another
    worker is registered on them (or after a wait): each single-active queue
    then goes to its own worker, and the rest stand by to take over.
    """

    worker_id: int = 0
    workers: int = 1

    def split(self, queues: Sequence[str], partitions: int | None) -> tuple[list[str], list[str]]:
        """``queues`` in two: this worker's own, and those it stands by for."""
        if partitions is None or self.workers <= 1:
            return list(queues), []
        own = [q for i, q in enumerate(queues) if (i % partitions) % self.workers == self.worker_id]
        return own, [queue for queue in queues if queue not in own]

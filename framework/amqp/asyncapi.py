"""The AsyncAPI 3.0 document of consumers: the queues they read, on which brokers, in what form.

Each part of the document comes from the consumers' settings, one small
function per part, so that a new setting shows with little work:

- ``servers``: one per broker node of each connection the consumers use, from
  its URL (host, port, vhost; never user or password);
- ``channels``: each queue a consumer reads, and the dead-letter and retry
  queues it moves messages to, with their AMQP bindings (``is: queue``);
- ``operations``: ``receive`` per consumer and queue, its bulk settings as
  ``x-bulkworker-<setting>`` fields; ``send`` to its dead-letter and retry queues;
- ``components``: a message per consumer, its payload the JSON Schema of its
  ``model``; the dead letter, its reason in its headers.
"""

import datetime
import decimal
import enum
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from yarl import URL

from framework.amqp.urls import split_amqp_urls
from framework.core.consumer import SPECS, ConsumerSettings
from framework.core.headers import (
    ATTEMPTS_HEADER,
    CONSUMER_HEADER,
    ERROR_HEADER,
    QUEUE_HEADER,
    REASON_HEADER,
    TIME_HEADER,
)
from framework.core.layout import retry_queue_arguments
from framework.core.model_schema import ModelSchemas, Schema
from framework.core.partitions import HASH_EXCHANGE_TYPE, partition_queues
from framework.core.serialization import type_name
from framework.errors import ConfigurationError

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
EXTENSION = "x-bulkworker-"
DEAD_LETTER_MESSAGE = "BulkworkerDeadLetter"
# Settings the document shows as its structure rather than as x-bulkworker- fields.
SHOWN_AS_STRUCTURE = frozenset(
    {"queues", "queue_arguments", "declare", "model", "dead_letter_queue", "connection"}
)
# What an AsyncAPI key (a channel, an operation, a component) may hold.
KEY_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
DEAD_LETTER_HEADERS: dict[str, Schema] = {
    REASON_HEADER: {
        "type": "string",
        "description": "why it was dead-lettered",
        "examples": ["rejected", "exception", "undecodable", "invalid", "retries-exhausted"],
    },
    ERROR_HEADER: {"type": "string", "description": "the exception or decoding error, as text"},
    QUEUE_HEADER: {"type": "string", "description": "the queue it was consumed from"},
    CONSUMER_HEADER: {"type": "string", "description": "the consumer class that moved it"},
    TIME_HEADER: {
        "type": "string",
        "format": "date-time",
        "description": "when it was dead-lettered (UTC)",
    },
    ATTEMPTS_HEADER: {"type": "integer", "description": "how many attempts at it failed"},
}


@attrs.frozen(kw_only=True)
class Connection:
    """A connection the consumers use: its name, its URL (None: not set), and where that is set."""

    name: str
    url: str | None
    variable: str


@attrs.frozen(kw_only=True)
class Consumer:
    """What the document says of one consumer: its settings and its docstring's first line."""

    settings: ConsumerSettings
    summary: str = ""


def key(text: str) -> str:
    """``text`` as an AsyncAPI key: letters, digits, ``.``, ``_`` and ``-``."""
    return KEY_CHARACTERS.sub("_", text) or "_"


def unique(base: str, taken: Mapping[str, Any]) -> str:
    """``base``, or ``base_2``, ``base_3``... the first that is not ``taken``."""
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def json_value(value: Any) -> Any:
    """A setting's or a queue argument's value as JSON shows it; classes and functions by name."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(name): json_value(item) for name, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(item) for item in value]
    if isinstance(value, type) or callable(value):
        return type_name(value)
    return type_name(type(value))  # a converter, say: its class, never its repr's address


@attrs.define
class AsyncApiDocument:
    """Builds the document, consumer by consumer; :meth:`document` gives the result.

    Channels are keyed by queue (on the default connection) or by connection and
    queue; a queue two consumers share, or a shared dead-letter queue, is one channel.
    """

    title: str
    version: str
    description: str = ""
    servers: dict[str, Schema] = attrs.field(factory=dict)
    channels: dict[str, Schema] = attrs.field(factory=dict)
    operations: dict[str, Schema] = attrs.field(factory=dict)
    messages: dict[str, Schema] = attrs.field(factory=dict)
    schemas: ModelSchemas = attrs.field(factory=lambda: ModelSchemas("#/components/schemas/"))
    _servers_of: dict[str, list[str]] = attrs.field(factory=dict)
    _vhosts: dict[str, str | None] = attrs.field(factory=dict)
    _channel_keys: dict[tuple[str, str], str] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return (
            f"<AsyncApiDocument(servers={len(self.servers)}, channels={len(self.channels)}, "
            f"operations={len(self.operations)})>"
        )

    def add_connection(self, connection: Connection) -> None:
        """The connection's broker nodes, as servers."""
        found = connection_servers(connection)
        self._servers_of[connection.name] = list(found)
        self._vhosts[connection.name] = connection_vhost(connection)
        self.servers.update(found)

    def add_consumer(self, consumer: Consumer) -> None:
        """The consumer's message, its queues and theirs, and what it does with each."""
        settings = consumer.settings
        if settings.connection not in self._vhosts:
            raise ConfigurationError(
                f"{settings.name}.connection is {settings.connection!r}, but no connection of "
                "that name is given to the document"
            )
        message = self.add_message(settings)
        vhost = self._vhosts[settings.connection]
        for queue in settings.queues:
            made = queue_channel(settings, queue, vhost)
            channel = self.add_channel(settings, queue, made, message)
            self.operations[f"{message}.receive.{channel}"] = receive_operation(
                consumer, queue, channel, message
            )
            self.add_dead_letters(settings, queue, message, vhost)
            self.add_retries(settings, queue, message, channel, vhost)
        for exchange in settings.exchanges:  # what publishers send to, with partitions
            self.add_channel(
                settings, exchange, exchange_channel(settings, exchange, vhost), message
            )

    def add_dead_letters(
        self, settings: ConsumerSettings, queue: str, message: str, vhost: str | None
    ) -> None:
        """The dead-letter queue of ``queue``, and the consumer's moves to it."""
        dead = settings.dead_letter_queue_for(queue)
        if dead is None:
            return
        self.messages.setdefault(DEAD_LETTER_MESSAGE, dead_letter_message())
        made = dead_letter_channel(settings, queue, dead, vhost)
        channel = self.add_channel(settings, dead, made, DEAD_LETTER_MESSAGE)
        self.operations[f"{message}.dead-letter.{channel}"] = send_operation(
            settings, channel, DEAD_LETTER_MESSAGE, f"Moves dead letters of {queue} here."
        )

    def add_retries(
        self, settings: ConsumerSettings, queue: str, message: str, own: str, vhost: str | None
    ) -> None:
        """Where counted retries of ``queue`` go: its retry queue, or back to its tail."""
        retry = settings.retry_queue_for(queue)
        if retry is not None:
            made = retry_channel(settings, queue, retry, vhost)
            channel = self.add_channel(settings, retry, made, message)
            text = f"Moves retries of {queue} here to wait."
        elif settings.bounded_retries and not settings.reads_stream:
            channel, text = own, f"Puts retries back at the tail of {queue}, attempts counted."
        else:  # plain requeues: the broker's, no copy is sent
            return
        self.operations[f"{message}.retry.{channel}"] = send_operation(
            settings, channel, message, text
        )

    def add_channel(
        self, settings: ConsumerSettings, queue: str, made: Schema, message: str
    ) -> str:
        """The channel of ``queue`` on the consumer's connection, made once; its key."""
        name = self.channel_key(settings.connection, queue)
        channel = self.channels.setdefault(name, made)
        if channel is not made and made["description"] not in channel["description"]:
            channel["description"] += " " + made["description"]
        channel["messages"][message] = {"$ref": f"#/components/messages/{message}"}
        channel["servers"] = [
            {"$ref": f"#/servers/{server}"} for server in self._servers_of[settings.connection]
        ]
        return name

    def channel_key(self, connection: str, queue: str) -> str:
        known = self._channel_keys.get((connection, queue))
        if known is not None:
            return known
        name = unique(
            key(queue if connection == "default" else f"{connection}.{queue}"), self.channels
        )
        self._channel_keys[(connection, queue)] = name
        return name

    def add_message(self, settings: ConsumerSettings) -> str:
        # The dead letter's name stays free for it, whichever consumer comes first.
        name = unique(key(settings.name), {**self.messages, DEAD_LETTER_MESSAGE: None})
        self.messages[name] = consumer_message(settings, self.schemas)
        return name

    def document(self) -> dict[str, Any]:
        """The AsyncAPI document, as JSON-ready dicts and lists."""
        info = {"title": self.title, "version": self.version}
        if self.description:
            info["description"] = self.description
        components: dict[str, Any] = {"messages": self.messages}
        if self.schemas.definitions:
            components["schemas"] = self.schemas.definitions
        return {
            "asyncapi": ASYNCAPI_VERSION,
            "info": info,
            "defaultContentType": "application/json",
            "servers": self.servers,
            "channels": self.channels,
            "operations": self.operations,
            "components": components,
        }


def document_of(
    consumers: Sequence[Consumer],
    connections: Sequence[Connection],
    *,
    title: str,
    version: str,
    description: str = "",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``consumers``, on the brokers of ``connections``.

    Args:
        consumers: the consumers, each with its resolved settings.
        connections: every connection the consumers name; a URL of None makes
            a server whose host is a variable, to be set where it is deployed.
        title: the application's name, for ``info.title``.
        version: the application's version, for ``info.version``.
        description: a longer text for ``info.description``.
    """
    document = AsyncApiDocument(title, version, description)
    for connection in connections:
        document.add_connection(connection)
    for consumer in consumers:
        document.add_consumer(consumer)
    return document.document()


def connection_servers(connection: Connection) -> dict[str, Schema]:
    """A server per node of the connection's URL, keyed by the connection (``name-2``...)."""
    if connection.url is None:
        return {key(connection.name): unset_server(connection)}
    nodes = split_amqp_urls(connection.url, connection.variable)
    names = (
        [connection.name]
        if len(nodes) == 1
        else [f"{connection.name}-{n}" for n in range(1, len(nodes) + 1)]
    )
    return {key(name): server(node, connection) for name, node in zip(names, nodes, strict=True)}


def server(url: URL, connection: Connection) -> Schema:
    """One broker node: host, port and vhost; the URL's user, password and options stay out."""
    host = url.host or ""
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
    return {
        "host": f"{shown}:{url.port or DEFAULT_PORTS[url.scheme]}",
        "pathname": pathname(vhost_of(url)),
        "protocol": url.scheme,
        "protocolVersion": "0-9-1",
        "description": f"RabbitMQ, connection {connection.name!r} ({connection.variable})",
        f"{EXTENSION}connection": connection.name,
    }


def unset_server(connection: Connection) -> Schema:
    """A server whose host is a variable: its URL is not set where the document is made."""
    return {
        "host": "{host}",
        "protocol": "amqp",
        "protocolVersion": "0-9-1",
        "description": f"RabbitMQ, connection {connection.name!r}: set {connection.variable}",
        "variables": {
            "host": {"description": f"host:port of the broker, from {connection.variable}"}
        },
        f"{EXTENSION}connection": connection.name,
    }


def pathname(vhost: str) -> str:
    """The URL path that selects ``vhost``: ``/`` the default one, ``/%2F`` never needed."""
    return "/" if vhost == "/" else "/" + urllib.parse.quote(vhost, safe="")


def vhost_of(url: URL) -> str:
    """The vhost as aiormq reads it: the decoded path without its ``/``, ``/`` if empty."""
    if url.path in ("", "/"):
        return "/"
    return url.path[1:].replace("%2F", "/")


def connection_vhost(connection: Connection) -> str | None:
    """The vhost of the connection's first node; None when its URL is not set."""
    if connection.url is None:
        return None
    return vhost_of(split_amqp_urls(connection.url, connection.variable)[0])


def queue_binding(
    queue: str, arguments: Mapping[str, Any], *, declared: bool, vhost: str | None
) -> Schema:
    """The AMQP binding of a queue channel; the queue's type and arguments as extensions."""
    properties: Schema = {"name": queue}
    if declared:  # declared durable by the framework; else it is as it was made
        properties.update(durable=True, exclusive=False, autoDelete=False)
    if vhost is not None:
        properties["vhost"] = vhost
    binding: Schema = {"is": "queue", "queue": properties, "bindingVersion": AMQP_BINDING_VERSION}
    binding[f"{EXTENSION}declared"] = declared
    if declared or "x-queue-type" in arguments:
        binding[f"{EXTENSION}queue-type"] = str(arguments.get("x-queue-type", "classic"))
    if arguments:
        binding[f"{EXTENSION}arguments"] = json_value(arguments)
    return binding


def channel(queue: str, binding: Schema, description: str) -> Schema:
    return {
        "address": queue,
        "title": queue,
        "description": description,
        "messages": {},
        "bindings": {"amqp": binding},
    }


def queue_channel(settings: ConsumerSettings, queue: str, vhost: str | None) -> Schema:
    binding = queue_binding(queue, settings.queue_arguments, declared=settings.declare, vhost=vhost)
    return channel(queue, binding, f"Read by {settings.name}.")


def dead_letter_channel(
    settings: ConsumerSettings, queue: str, dead: str, vhost: str | None
) -> Schema:
    binding = queue_binding(dead, {}, declared=settings.declare, vhost=vhost)
    return channel(
        dead,
        binding,
        f"Dead letters of {queue} ({settings.name}): rejected, undecodable, invalid and "
        f"exhausted messages as they arrived, why in their {EXTENSION}* headers.",
    )


def exchange_channel(settings: ConsumerSettings, exchange: str, vhost: str | None) -> Schema:
    """The consistent-hash exchange in front of a partitioned queue's partition queues."""
    properties: Schema = {"name": exchange, "durable": True, "autoDelete": False}
    if vhost is not None:
        properties["vhost"] = vhost
    partitions = settings.partitions or 0
    binding: Schema = {
        "is": "routingKey",
        "exchange": properties,  # its type, x-consistent-hash, is not one the binding names
        "bindingVersion": AMQP_BINDING_VERSION,
        f"{EXTENSION}exchange-type": HASH_EXCHANGE_TYPE,
        f"{EXTENSION}partition-queues": list(partition_queues(exchange, partitions)),
    }
    return channel(
        exchange,
        binding,
        f"Publish here for {settings.name}, the message's key as routing key: a "
        f"consistent-hash exchange over {partitions} partition queues, each with a single "
        "active consumer, so one key is handled in order.",
    )


def retry_channel(settings: ConsumerSettings, queue: str, retry: str, vhost: str | None) -> Schema:
    binding = queue_binding(
        retry, retry_queue_arguments(queue), declared=settings.declare, vhost=vhost
    )
    return channel(
        retry,
        binding,
        f"Retries of {queue} ({settings.name}) wait here ({settings.retry_delay:g} s, doubling "
        f"up to {settings.retry_backoff_max:g} s), then return to {queue} through the default "
        "exchange.",
    )


def setting_fields(settings: ConsumerSettings) -> Schema:
    """Every setting the document's structure does not show, as ``x-bulkworker-<name>``."""
    return {
        f"{EXTENSION}{name.replace('_', '-')}": json_value(getattr(settings, name))
        for name in SPECS
        if name not in SHOWN_AS_STRUCTURE
    }


def receive_operation(consumer: Consumer, queue: str, channel_key: str, message: str) -> Schema:
    settings = consumer.settings
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel_key}"},
        "title": f"{settings.name} reads {queue}",
        "summary": consumer.summary or f"{settings.name} handles {queue} in bulks.",
        "description": handling(settings, queue),
        "messages": [{"$ref": f"#/channels/{channel_key}/messages/{message}"}],
        "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
        **setting_fields(settings),
    }


def send_operation(
    settings: ConsumerSettings, channel_key: str, message: str, description: str
) -> Schema:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{channel_key}"},
        "title": f"{settings.name} moves to {channel_key}",
        "description": description,
        "messages": [{"$ref": f"#/channels/{channel_key}/messages/{message}"}],
    }


def handling(settings: ConsumerSettings, queue: str) -> str:
    """What the consumer does with the messages of ``queue``, in a few sentences."""
    text = (
        f"In bulks of up to {settings.bulk_size}, handled when full or "
        f"{settings.flush_interval:g} s after their first message (prefetch "
        f"{settings.prefetch}). When handle returns: {settings.on_success.name}; when it "
        f"raises: {settings.on_exception.name}."
    )
    dead = settings.dead_letter_queue_for(queue)
    if settings.reads_stream:  # a stream takes nothing back: no retries, no requeues
        offset = json_value(settings.stream_offset) or "next"
        return text + f" A stream, read from {offset}; it takes no message back."
    if settings.max_retries is not None:
        text += f" A message is retried at most {settings.max_retries} times"
        text += f", then dead-lettered to {dead}." if dead else ", then rejected to the broker."
    if dead is None:
        text += " Rejected messages go back to the broker (its dead-letter exchange, or dropped)."
    return text


def consumer_message(settings: ConsumerSettings, schemas: ModelSchemas) -> Schema:
    """The message a consumer reads: its ``model``'s schema, or what its decoder makes of it."""
    message: Schema = {"name": settings.name, "title": f"What {settings.name} reads"}
    if settings.decoder is None:
        message["contentType"] = "application/json"
    message["description"] = body_description(settings)
    message["payload"] = {} if settings.model is None else schemas.schema_of(settings.model)
    headers = consumer_headers(settings)
    if headers:
        message["headers"] = {"type": "object", "properties": headers}
    return message


def body_description(settings: ConsumerSettings) -> str:
    """How a body becomes ``Message.body``, in words."""
    decoder = settings.decoder
    if settings.model is None:
        if decoder is not None:
            return f"Any body {type_name(decoder)} decodes."
        return "Any JSON value; a text/* body arrives as text, other content types as bytes."
    notes = [f"Read into {type_name(settings.model)}"]
    if decoder is not None:
        notes.append(f"after {type_name(decoder)} decodes it")
    if settings.converter is not None:
        notes.append(f"by the converter {type_name(type(settings.converter))}")
    refused = "refused" if settings.refuse_unknown_keys else "ignored"
    return (
        " ".join(notes) + f"; keys it has no field for are {refused}; a body that does "
        "not fit is dead-lettered."
    )


def consumer_headers(settings: ConsumerSettings) -> Schema:
    """The headers the consumer reads: the one its bulks are grouped by, its retries' count."""
    headers: Schema = {}
    if isinstance(settings.group_by, str):
        headers[settings.group_by] = {"description": "bulks are grouped by its value"}
    if settings.bounded_retries:
        headers[ATTEMPTS_HEADER] = {
            "type": "integer",
            "description": "on a retry: how many attempts at it failed before",
        }
    return headers


def dead_letter_message() -> Schema:
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "A dead letter",
        "summary": "A message bulkworker moved aside, unchanged, with why in its headers.",
        "payload": {"description": "the original body, as it arrived"},
        "headers": {"type": "object", "properties": DEAD_LETTER_HEADERS},
    }

"""The parts of an AsyncAPI 3.0 document, one small function each: servers, channels,
operations and messages, from the consumers' settings (see :mod:`framework.amqp.asyncapi`)."""

import datetime
import decimal
import enum
import math
import re
import urllib.parse
from collections.abc import Mapping
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

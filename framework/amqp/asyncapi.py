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

from collections.abc import Sequence
from typing import Any

import attrs

from framework.amqp.asyncapi_parts import (
    ASYNCAPI_VERSION,
    DEAD_LETTER_MESSAGE,
    Connection,
    Consumer,
    connection_servers,
    connection_vhost,
    consumer_message,
    dead_letter_channel,
    dead_letter_message,
    exchange_channel,
    key,
    queue_channel,
    receive_operation,
    retry_channel,
    send_operation,
    unique,
)
from framework.core.consumer import ConsumerSettings
from framework.core.model_schema import ModelSchemas, Schema
from framework.errors import ConfigurationError


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


__all__ = ["Connection", "Consumer", "document_of"]

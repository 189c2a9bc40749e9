"""A publisher that records instead of sending, and a connection that never connects.

:class:`RecordingPublisher` has the whole API of :class:`framework.Publisher`:
``publish`` and ``publish_many`` encode exactly as the real one does (the same
code), "confirm" each message, and raise :class:`UnroutableError` where RabbitMQ
would return a mandatory message: a routing key on the default exchange that
names no known queue, or an exchange nothing was allowed on. The harness makes
the consumer's own queues (and their dead-letter and retry queues) known;
tests add more with :meth:`RecordingPublisher.allow`, and a queue declared
through :class:`OfflineConnection` becomes known by itself.
"""

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import cattrs

from framework.core.decoding import decode_body
from framework.core.outcome import Move
from framework.core.partitions import partition_route
from framework.core.serialization import DEFAULT_CONVERTER, encode_body
from framework.errors import PublishError, UnroutableError

ANY_KEY = "*"


@attrs.frozen
class PublishedMessage:
    """One message a handler published: where to, and what it carried.

    ``body`` is the message as a consumer would decode it (JSON back into
    dicts and lists); ``raw`` the bytes sent.
    """

    routing_key: str
    exchange: str
    body: Any
    raw: bytes
    headers: dict[str, Any]
    content_type: str | None
    message_id: str | None
    persistent: bool


@attrs.define
class RecordingPublisher:
    """Publishes nowhere: records each message, refuses the unroutable like RabbitMQ."""

    converter: cattrs.BaseConverter = DEFAULT_CONVERTER
    messages: list[PublishedMessage] = attrs.field(factory=list)
    routes: set[tuple[str, str]] = attrs.field(factory=set)
    # Set to make the next publishes fail as a broker nack would.
    fail_with: Exception | None = None

    def __repr__(self) -> str:
        return f"<RecordingPublisher published={len(self.messages)} routes={len(self.routes)}>"

    @property
    def published(self) -> int:
        return len(self.messages)

    def allow(self, routing_key: str = ANY_KEY, *, exchange: str = "") -> None:
        """Make ``routing_key`` on ``exchange`` routable (``"*"``: every key of that exchange)."""
        self.routes.add((exchange, routing_key))

    def to(self, routing_key: str, exchange: str = "") -> list[Any]:
        """The bodies published with ``routing_key`` on ``exchange``, in order."""
        return [
            m.body for m in self.messages if (m.routing_key, m.exchange) == (routing_key, exchange)
        ]

    async def open(self) -> None:
        return None

    async def close(self, within: float = 5.0) -> None:
        return None

    async def refusal(self) -> str | None:
        return None

    async def publish(
        self,
        body: Any,
        *,
        routing_key: str,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        persistent: bool = True,
        mandatory: bool = True,
    ) -> None:
        """Record ``body`` as :meth:`framework.Publisher.publish` would send it."""
        message = self._prepare(
            body, routing_key, exchange, headers, message_id, content_type, persistent
        )
        self._send([message], mandatory)

    async def publish_partitioned(
        self,
        consumer: type[Any],
        body: Any,
        *,
        key: str | None = None,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str | None = None,
        persistent: bool = True,
    ) -> None:
        """Record ``body`` as :meth:`framework.Publisher.publish_partitioned` would route it.

        The exchange is the consumer's queue and the routing key its key:
        ``to(key, exchange=queue)`` finds it. Every key of the exchange is
        routable, as on a broker where the consumer declared its partitions.
        """
        exchange, routing_key = partition_route(consumer, body, headers or {}, key, queue)
        self.allow(exchange=exchange)
        message = self._prepare(
            body, routing_key, exchange, headers, message_id, content_type, persistent
        )
        self._send([message], mandatory=True)

    async def publish_many(
        self,
        bodies: Iterable[Any],
        *,
        routing_key: str,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        persistent: bool = True,
        mandatory: bool = True,
    ) -> int:
        """Record every body; all are encoded first, as the real one does."""
        prepared = [
            self._prepare(body, routing_key, exchange, headers, None, content_type, persistent)
            for body in bodies
        ]
        self._send(prepared, mandatory)
        return len(prepared)

    async def publish_move(self, move: Move) -> None:
        """A retry or dead-letter copy, recorded like any other message."""
        message = move.message
        self._send(
            [
                PublishedMessage(
                    move.routing_key,
                    "",
                    message.body,
                    message.raw,
                    dict(move.headers),
                    message.content_type,
                    message.message_id,
                    True,
                )
            ],
            True,
        )

    def _prepare(
        self,
        body: Any,
        routing_key: str,
        exchange: str,
        headers: Mapping[str, Any] | None,
        message_id: str | None,
        content_type: str | None,
        persistent: bool,
    ) -> PublishedMessage:
        raw, detected = encode_body(body, self.converter)
        kind = content_type or detected
        decoded = decode_body(raw, kind)
        return PublishedMessage(
            routing_key, exchange, decoded, raw, dict(headers or {}), kind, message_id, persistent
        )

    def _send(self, messages: list[PublishedMessage], mandatory: bool) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        for message in messages:
            if mandatory and not self.routable(message.exchange, message.routing_key):
                where = message.exchange or "the default exchange"
                raise UnroutableError(
                    f"the broker did not take 1 of {len(messages)} messages for {where} with "
                    f"routing key {message.routing_key!r}: returned unroutable (NO_ROUTE; in "
                    "memory: allow it with harness.publisher.allow(...))"
                )
        # What RabbitMQ would drop (mandatory=False, no route) is not recorded either.
        self.messages.extend(m for m in messages if self.routable(m.exchange, m.routing_key))

    def routable(self, exchange: str, routing_key: str) -> bool:
        return (exchange, routing_key) in self.routes or (exchange, ANY_KEY) in self.routes


class OfflineConnection:
    """Stands in for the container's connection in memory: declarations are recorded.

    A queue declared on one of its channels becomes routable for the recording
    publisher, as it would on RabbitMQ. Anything else a real connection does is
    an error that says to run the test with ``broker=True``.
    """

    def __init__(self, publisher: RecordingPublisher) -> None:
        self.publisher = publisher
        self.declared: list[str] = []
        self.is_closed = False

    def __repr__(self) -> str:
        return f"<OfflineConnection declared={len(self.declared)}>"

    async def channel(self, *args: Any, **kwargs: Any) -> "OfflineChannel":
        return OfflineChannel(self)

    async def close(self) -> None:
        self.is_closed = True

    def __getattr__(self, name: str) -> Any:
        raise PublishError(
            f"the in-memory harness has no broker connection to use {name!r} on: "
            "run this test with ConsumerHarness(..., broker=True)"
        )


class OfflineQueue:
    """A queue declared in memory; binding it makes its routing key routable."""

    def __init__(self, name: str, publisher: RecordingPublisher) -> None:
        self.name = name
        self._publisher = publisher

    def __repr__(self) -> str:
        return f"<OfflineQueue {self.name}>"

    async def bind(self, exchange: Any, routing_key: str | None = None, **kwargs: Any) -> None:
        name = exchange if isinstance(exchange, str) else getattr(exchange, "name", str(exchange))
        self._publisher.allow(routing_key or self.name, exchange=name)


class OfflineChannel:
    """A channel of :class:`OfflineConnection`: it declares queues and exchanges, no more."""

    def __init__(self, connection: OfflineConnection) -> None:
        self._connection = connection

    async def declare_queue(self, name: str | None = None, **kwargs: Any) -> OfflineQueue:
        queue = name or f"amq.gen-{uuid.uuid4().hex}"
        self._connection.declared.append(queue)
        self._connection.publisher.allow(queue)
        return OfflineQueue(queue, self._connection.publisher)

    async def declare_exchange(self, name: str, *args: Any, **kwargs: Any) -> str:
        # Routable only once a queue is bound to it, as on RabbitMQ.
        return name

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise PublishError(
            f"the in-memory harness's channels only declare queues and exchanges, not "
            f"{name!r}: run this test with ConsumerHarness(..., broker=True)"
        )


class OfflinePool:
    """The container's ``connections`` or ``publishers`` in memory: one stand-in for every name."""

    def __init__(self, stand_in: Any) -> None:
        self._stand_in = stand_in

    def __repr__(self) -> str:
        return f"<OfflinePool {self._stand_in!r}>"

    async def of(self, name: str) -> Any:
        return self._stand_in

    def opened(self) -> list[tuple[str, Any]]:
        return [("default", self._stand_in)]

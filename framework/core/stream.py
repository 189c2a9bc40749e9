"""Reading a stream queue: where to start, where to resume, and what a stream refuses.

A stream (``x-queue-type: stream``) is an append-only log: consuming does not
remove anything, an ack only returns credit, and RabbitMQ answers a
``basic.nack`` or ``basic.reject`` with a connection error (540
NOT_IMPLEMENTED). So a stream consumer never asks the broker to take a message
back: failures are dead-lettered as copies, and a message "given back" while
the sink is down is acked for credit and read again from the stream later.

:class:`StreamPosition` remembers, per queue, the offset after the last
settled message. Every ``basic.consume`` on a stream (the first, and each one
after a reconnect or an outage pause) starts there; before anything was read
it starts after the offset the consumer's ``stored_offset`` hook returns, else
at ``stream_offset``.
"""

import datetime
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from framework.core.actions import Actions
from framework.core.headers import STREAM_OFFSET_HEADER
from framework.core.message import Message
from framework.errors import ConsumerDefinitionError, StreamStartError

STREAM_QUEUE_TYPE = "stream"
OFFSET_WORDS = ("first", "last", "next")
# RabbitMQ's interval syntax (as for x-max-age); anything else closes the connection.
INTERVAL = re.compile(r"[1-9][0-9]*[YMDhms]")
HOOK = "stored_offset"

StoredOffset = Callable[[str], Awaitable[int | None]]


def reads_stream(queue_arguments: Mapping[str, Any]) -> bool:
    """Whether queues declared with these arguments are streams."""
    return queue_arguments.get("x-queue-type") == STREAM_QUEUE_TYPE


def refusal(cls: type, attribute: str, problem: str) -> ConsumerDefinitionError:
    return ConsumerDefinitionError(f"{cls.__name__}.{attribute} {problem}")


def check_stream_offset(cls: type, name: str, value: object) -> None:
    """``first``, ``last``, ``next``, an offset, an aware datetime or an interval like ``1h``."""
    if value is None or value in OFFSET_WORDS:
        return
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return
    if isinstance(value, datetime.datetime) and value.utcoffset() is not None:
        return
    if isinstance(value, str) and INTERVAL.fullmatch(value):
        return
    raise refusal(
        cls,
        name,
        'must be "first", "last", "next", an offset of at least 0, a timezone-aware '
        f'datetime or an interval like "30m" or "7D" (s, m, h, D, M, Y), got {value!r}',
    )


def check_stream_rules(consumer: type) -> None:
    """Refuse what a stream cannot do, and stream settings on a consumer of other queues."""
    if not reads_stream(consumer.queue_arguments):  # type: ignore[attr-defined]
        check_not_stream(consumer)
        return
    for attribute in ("on_success", "on_exception"):
        if getattr(consumer, attribute) is Actions.REQUEUE:
            raise refusal(
                consumer,
                attribute,
                "is Actions.REQUEUE, but a stream cannot take a message back (RabbitMQ "
                "refuses nack and reject on streams): use Actions.REJECT to dead-letter a "
                "copy with its reason, and raise SinkUnavailable (or name the error in "
                "outage_errors) for failures worth trying again",
            )
    for attribute, value, problem in stream_conflicts(consumer):
        if value:
            raise refusal(consumer, attribute, problem)
    check_hook(consumer)


def stream_conflicts(consumer: Any) -> list[tuple[str, bool, str]]:
    """(attribute, whether it conflicts, why) for each setting a stream rules out."""
    return [
        (
            "dead_letter_queue",
            consumer.dead_letter_queue is None,
            "is None, but a stream cannot reject to the broker: name a dead-letter queue "
            'for messages that fail (e.g. "{queue}.dlq")',
        ),
        (
            "retry_delay",
            consumer.retry_delay > 0,
            f"is {consumer.retry_delay!r}, but retries go back to their queue and a stream "
            "is read by others too: leave it 0 and let the outage breaker retry the bulk",
        ),
        (
            "max_concurrent_bulks",
            consumer.max_concurrent_bulks > 1,
            f"is {consumer.max_concurrent_bulks}, but a stream is read in offset order and "
            "an offset you store must cover every message before it: use 1",
        ),
        (
            "group_by",
            consumer.group_by is not None,
            "is set, but bulks by key would settle offsets out of order: a stream consumer "
            "reads in offset order, leave it None",
        ),
        (
            "partitions",
            getattr(consumer, "partitions", None) is not None,
            "is set, but partitions are queues with a single active consumer behind an "
            "exchange, and a stream is read by every consumer: read the stream itself",
        ),
    ]


def check_not_stream(consumer: type) -> None:
    if getattr(consumer, "stream_offset", None) is not None:
        raise refusal(
            consumer,
            "stream_offset",
            'applies to stream queues only: add "x-queue-type": "stream" to queue_arguments',
        )
    if callable(getattr(consumer, HOOK, None)):
        raise refusal(
            consumer,
            HOOK,
            'is called for stream queues only: add "x-queue-type": "stream" to '
            "queue_arguments, or rename the method",
        )


def check_hook(consumer: type) -> None:
    hook = getattr(consumer, HOOK, None)
    if hook is None:
        return
    function = inspect.unwrap(hook)
    if not inspect.iscoroutinefunction(function):
        raise refusal(
            consumer, HOOK, "must be declared 'async def stored_offset(self, queue: str)'"
        )
    if len(inspect.signature(function).parameters) != 2:
        raise refusal(
            consumer,
            HOOK,
            "must take the queue name: 'async def stored_offset(self, queue: str) -> int | None'",
        )


def stored_offset_hook(handler: Callable[..., Any]) -> StoredOffset | None:
    """The ``stored_offset`` method of the consumer instance behind ``handler``, if any."""
    consumer = getattr(handler, "__self__", None)
    hook = getattr(consumer, HOOK, None)
    return hook if callable(hook) else None


def offset_of(headers: Mapping[str, Any]) -> int | None:
    """The stream offset the broker put in a delivery's headers."""
    value = headers.get(STREAM_OFFSET_HEADER)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class StreamPosition:
    """Where each stream queue of one consumer resumes reading.

    Args:
        start: ``stream_offset``, where reading starts when nothing says otherwise
            (``None``: ``next``, the broker's own default).
        stored: the consumer's ``stored_offset`` hook: the last offset it stored
            for a queue, so reading starts right after it.
        name: the consumer's class name, for errors.
    """

    def __init__(
        self, start: Any, stored: StoredOffset | None = None, *, name: str = "consumer"
    ) -> None:
        self._name = name
        self._start = start
        self._stored = stored
        self._next: dict[str, int] = {}  # queue -> first offset not settled yet
        self._first_start: dict[str, Any] = {}  # queue -> where its first consume started

    def __repr__(self) -> str:
        return f"<StreamPosition {self._next}>"

    @classmethod
    def of(cls, settings: Any, handler: Callable[..., Any]) -> "StreamPosition | None":
        """The position of a consumer that reads streams (None for other queues)."""
        if not settings.reads_stream:
            return None
        return cls(settings.stream_offset, stored_offset_hook(handler), name=settings.name)

    def next_offset(self, queue: str) -> int | None:
        """The first offset of ``queue`` not settled yet; None before anything arrived."""
        return self._next.get(queue)

    def delivered(self, message: Message[Any]) -> bool:
        """Note an arrival; False when its offset was settled before (a re-read)."""
        offset = message.stream_offset
        if offset is None:
            return True
        settled_before = self._next.setdefault(message.queue, offset)
        return offset >= settled_before

    def restart(self, queue: str) -> None:
        """``queue`` was deleted (and may come back empty): read the new one from its start.

        Offsets of a stream declared again begin at 0: the old position would
        skip every new message as one read before.
        """
        self._next.pop(queue, None)
        self._first_start[queue] = "first"

    def split(
        self, messages: Iterable[Message[Any]]
    ) -> tuple[list[Message[Any]], list[Message[Any]]]:
        """(messages still to handle, messages whose offset was settled in the meantime)."""
        fresh: list[Message[Any]] = []
        settled: list[Message[Any]] = []
        for message in messages:
            offset = message.stream_offset
            resume = self._next.get(message.queue)
            done = offset is not None and resume is not None and offset < resume
            (settled if done else fresh).append(message)
        return fresh, settled

    def settled(self, messages: Iterable[Message[Any]]) -> None:
        """These messages are done with (acked or dead-lettered): resume after them."""
        for message in messages:
            offset = message.stream_offset
            if offset is not None and offset + 1 > self._next.get(message.queue, -1):
                self._next[message.queue] = offset + 1

    async def consume_arguments(self, queue: str) -> dict[str, Any]:
        """The ``basic.consume`` arguments that start ``queue`` where it must."""
        return {STREAM_OFFSET_HEADER: await self.start_of(queue)}

    async def start_of(self, queue: str) -> Any:
        """Where reading ``queue`` starts now: after what was settled, or stored, or ``start``.

        The stored offset is asked for once: a reconnect before anything
        arrived starts where the first consume did, without calling the
        user's database while the broker connection is being restored.
        """
        resume = self._next.get(queue)
        if resume is not None:
            return resume
        if queue not in self._first_start:
            self._first_start[queue] = await self._configured_start(queue)
        return self._first_start[queue]

    async def _configured_start(self, queue: str) -> Any:
        stored = await self._stored_offset(queue)
        if stored is None:
            return "next" if self._start is None else self._start
        if isinstance(stored, bool) or not isinstance(stored, int) or stored < 0:
            raise StreamStartError(
                f"{self._name}.{HOOK}({queue!r}) returned {stored!r}: return the last offset "
                "stored (an int of at least 0), or None when nothing is stored yet"
            )
        return stored + 1

    async def _stored_offset(self, queue: str) -> Any:
        if self._stored is None:
            return None
        try:
            return await self._stored(queue)
        except Exception as error:
            raise StreamStartError(
                f"{self._name}.{HOOK}({queue!r}) raised {type(error).__name__}: {error}; "
                "the stream is not read rather than read from a guess"
            ) from error

"""The consumer declaration: a class per consumer, its settings as class attributes."""

import abc
import difflib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from framework.actions import Actions
from framework.errors import ConsumerDefinitionError
from framework.message import Message

# Quorum queues refuse a larger prefetch; see RabbitMQ's quorum queue docs.
QUORUM_PREFETCH_LIMIT = 2000
# "{queue}" stands for the queue a message came from.
DEFAULT_DEAD_LETTER_QUEUE = "{queue}.dlq"


class BulkConsumer(abc.ABC):
    """Base class of every consumer.

    Subclasses declare their settings as class attributes (read through
    inheritance) and implement ``async def handle(self, messages)``. A subclass
    that leaves ``handle`` abstract, or is declared with ``abstract=True``, is a
    base for other consumers and is never run::

        class AuditBase(BulkConsumer, abstract=True):
            bulk_size = 100
    """

    queues: ClassVar[list[str] | tuple[str, ...]] = ()
    bulk_size: ClassVar[int] = 1
    flush_interval: ClassVar[float | None] = None
    prefetch: ClassVar[int | None] = None
    on_success: ClassVar[Actions] = Actions.ACK
    on_exception: ClassVar[Actions] = Actions.REQUEUE
    declare: ClassVar[bool] = True
    queue_arguments: ClassVar[Mapping[str, Any]] = {}
    dead_letter_queue: ClassVar[str | None] = DEFAULT_DEAD_LETTER_QUEUE
    max_retries: ClassVar[int | None] = 5
    retry_delay: ClassVar[float] = 0.0
    isolate_failures: ClassVar[bool] = False
    handler_timeout: ClassVar[float | None] = None
    model: ClassVar[Any] = None
    decoder: ClassVar[Callable[[bytes, str | None], Any] | None] = None
    __bulkworker_abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__bulkworker_abstract__ = abstract
        check_unknown_attributes(cls)
        check_given_values(cls)
        if is_runnable(cls):
            ConsumerSettings.of(cls)

    @abc.abstractmethod
    async def handle(self, messages: list[Message[Any]]) -> None:
        """Process one bulk; raising settles it with ``on_exception``."""


SETTING_NAMES = (
    "queues",
    "bulk_size",
    "flush_interval",
    "prefetch",
    "on_success",
    "on_exception",
    "declare",
    "queue_arguments",
    "dead_letter_queue",
    "max_retries",
    "retry_delay",
    "isolate_failures",
    "handler_timeout",
    "model",
    "decoder",
)


def is_runnable(cls: type[BulkConsumer]) -> bool:
    """A concrete consumer: not declared abstract and ``handle`` implemented."""
    return not cls.__dict__.get("__bulkworker_abstract__", False) and not inspect.isabstract(cls)


def fail(cls: type, attribute: str, problem: str) -> ConsumerDefinitionError:
    return ConsumerDefinitionError(f"{cls.__name__}.{attribute} {problem}")


def check_unknown_attributes(cls: type) -> None:
    """Refuse public lower-case class attributes that are not settings (typos)."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name.isupper() or name in SETTING_NAMES:
            continue
        if callable(value) or inspect.isdatadescriptor(value) or is_injection_marker(value):
            continue
        if isinstance(value, classmethod | staticmethod):
            continue
        close = difflib.get_close_matches(name, SETTING_NAMES, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise fail(
            cls, name, f"is not a consumer setting ({hint}settings: {', '.join(SETTING_NAMES)})"
        )


def is_injection_marker(value: object) -> bool:
    """``Provide[...]`` and friends may stand as class attributes; wiring fills them."""
    return type(value).__module__ == "dependency_injector.wiring"


def check_given_values(cls: type) -> None:
    """Check the type of each setting this class itself sets."""
    for name in SETTING_NAMES:
        if name in vars(cls):
            VALIDATORS[name](cls, vars(cls)[name])


def check_queues(cls: type, value: object) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise fail(cls, "queues", f"must be a list of queue names, got {value!r}")
    for queue in value:
        if not isinstance(queue, str) or not queue:
            raise fail(cls, "queues", f"must hold non-empty strings, got {queue!r}")
    if len(set(value)) != len(value):
        raise fail(cls, "queues", f"names a queue twice: {value!r}")


def check_positive_int(cls: type, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(cls, name, f"must be a whole number of at least 1, got {value!r}")


def check_prefetch(cls: type, value: object) -> None:
    if value is not None:
        check_positive_int(cls, "prefetch", value)


def check_flush_interval(cls: type, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(cls, "flush_interval", f"must be a number of seconds above 0, got {value!r}")


def check_action(name: str) -> Any:
    def check(cls: type, value: object) -> None:
        if not isinstance(value, Actions):
            raise fail(cls, name, f"must be one of Actions.ACK/REQUEUE/REJECT, got {value!r}")

    return check


def check_declare(cls: type, value: object) -> None:
    if not isinstance(value, bool):
        raise fail(cls, "declare", f"must be True or False, got {value!r}")


def check_queue_arguments(cls: type, value: object) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise fail(cls, "queue_arguments", f"must be a dict with string keys, got {value!r}")


def check_dead_letter_queue(cls: type, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise fail(cls, "dead_letter_queue", f"must be a queue name or None, got {value!r}")
    try:
        value.format(queue="q")
    except (KeyError, IndexError, ValueError):
        raise fail(
            cls, "dead_letter_queue", f"may only use {{queue}} as a placeholder, got {value!r}"
        ) from None


def check_max_retries(cls: type, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise fail(
            cls, "max_retries", f"must be a whole number of at least 0, or None, got {value!r}"
        )


def check_retry_delay(cls: type, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise fail(cls, "retry_delay", f"must be a number of seconds of at least 0, got {value!r}")


def check_isolate_failures(cls: type, value: object) -> None:
    if not isinstance(value, bool):
        raise fail(cls, "isolate_failures", f"must be True or False, got {value!r}")


def check_handler_timeout(cls: type, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(
            cls, "handler_timeout", f"must be a number of seconds above 0, or None, got {value!r}"
        )


def check_model(cls: type, value: object) -> None:
    if value is None or isinstance(value, type) or typing.get_origin(value) is not None:
        return
    raise fail(
        cls,
        "model",
        f"must be a class (e.g. an attrs class) or a type like list[int], got {value!r}",
    )


def check_decoder(cls: type, value: object) -> None:
    if value is not None and not callable(value):
        raise fail(
            cls, "decoder", f"must be a function (raw: bytes, content_type) -> body, got {value!r}"
        )


VALIDATORS = {
    "queues": check_queues,
    "bulk_size": lambda cls, value: check_positive_int(cls, "bulk_size", value),
    "flush_interval": check_flush_interval,
    "prefetch": check_prefetch,
    "on_success": check_action("on_success"),
    "on_exception": check_action("on_exception"),
    "declare": check_declare,
    "queue_arguments": check_queue_arguments,
    "dead_letter_queue": check_dead_letter_queue,
    "max_retries": check_max_retries,
    "retry_delay": check_retry_delay,
    "isolate_failures": check_isolate_failures,
    "handler_timeout": check_handler_timeout,
    "model": check_model,
    "decoder": check_decoder,
}


@attrs.frozen
class ConsumerSettings:
    """A consumer class's effective settings, every default filled in."""

    name: str
    queues: tuple[str, ...]
    bulk_size: int
    flush_interval: float
    prefetch: int
    on_success: Actions
    on_exception: Actions
    declare: bool
    queue_arguments: Mapping[str, Any]
    dead_letter_queue: str | None = DEFAULT_DEAD_LETTER_QUEUE
    max_retries: int | None = 5
    retry_delay: float = 0.0
    isolate_failures: bool = False
    handler_timeout: float | None = None
    model: Any = None
    decoder: Callable[[bytes, str | None], Any] | None = None

    def dead_letter_queue_for(self, queue: str) -> str | None:
        """Where messages of ``queue`` are dead-lettered; None: discarded."""
        if self.dead_letter_queue is None:
            return None
        return self.dead_letter_queue.format(queue=queue)

    def retry_queue_for(self, queue: str) -> str | None:
        """Where retries of ``queue`` wait out ``retry_delay``; None: straight back."""
        return f"{queue}.retry" if self.retry_delay > 0 else None

    def declarations_for(self, queue: str) -> list[tuple[str, Mapping[str, Any], str]]:
        """``queue`` and what the framework needs beside it: (name, arguments, role)."""
        needed: list[tuple[str, Mapping[str, Any], str]] = [(queue, self.queue_arguments, "queue")]
        dead = self.dead_letter_queue_for(queue)
        if dead is not None:
            needed.append((dead, {}, "dead-letter queue"))
        retry = self.retry_queue_for(queue)
        if retry is not None:
            back = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
            needed.append((retry, back, "retry queue"))
        return needed

    def declarations(self) -> list[tuple[str, Mapping[str, Any], str]]:
        """Every queue this consumer needs, each once (a shared dead-letter queue too)."""
        needed: dict[str, tuple[str, Mapping[str, Any], str]] = {}
        for queue in self.queues:
            for declaration in self.declarations_for(queue):
                needed.setdefault(declaration[0], declaration)
        return list(needed.values())

    @property
    def bounded_retries(self) -> bool:
        """False for asyncworker's behaviour: REQUEUE is a plain broker requeue."""
        return self.max_retries is not None or self.retry_delay > 0

    @classmethod
    def of(
        cls, consumer: type[BulkConsumer], default_flush_interval: float = 60.0
    ) -> "ConsumerSettings":
        """Read and check every setting of ``consumer`` through its MRO."""
        for name in SETTING_NAMES:
            VALIDATORS[name](consumer, getattr(consumer, name))
        if not consumer.queues:
            raise fail(consumer, "queues", "is required: name at least one queue to consume")
        check_handle(consumer)
        return cls(
            name=consumer.__name__,
            queues=tuple(consumer.queues),
            bulk_size=consumer.bulk_size,
            flush_interval=float(consumer.flush_interval or default_flush_interval),
            prefetch=effective_prefetch(consumer),
            on_success=consumer.on_success,
            on_exception=consumer.on_exception,
            declare=consumer.declare,
            queue_arguments=dict(consumer.queue_arguments),
            dead_letter_queue=consumer.dead_letter_queue,
            max_retries=consumer.max_retries,
            retry_delay=float(consumer.retry_delay),
            isolate_failures=consumer.isolate_failures,
            handler_timeout=None
            if consumer.handler_timeout is None
            else float(consumer.handler_timeout),
            model=consumer.model,
            decoder=consumer.decoder,
        )


def check_handle(consumer: type[BulkConsumer]) -> None:
    handle = inspect.unwrap(consumer.handle)
    if not inspect.iscoroutinefunction(handle):
        raise fail(consumer, "handle", "must be a coroutine: declare it 'async def handle(...)'")


def effective_prefetch(consumer: type[BulkConsumer]) -> int:
    """``prefetch`` or twice the bulk size, so the next bulk fills while one is handled."""
    quorum = consumer.queue_arguments.get("x-queue-type") == "quorum"
    limit = QUORUM_PREFETCH_LIMIT if quorum else None
    if consumer.prefetch is None:
        prefetch = 2 * consumer.bulk_size
        if limit is not None:
            prefetch = min(prefetch, limit)
    else:
        prefetch = consumer.prefetch
    if prefetch < consumer.bulk_size:
        where = "prefetch" if consumer.prefetch is not None else "bulk_size"
        raise fail(
            consumer,
            where,
            f"allows a bulk of {consumer.bulk_size} but prefetch is {prefetch}: a bulk could "
            "never fill; raise prefetch to at least bulk_size",
        )
    if limit is not None and prefetch > limit:
        raise fail(
            consumer,
            "prefetch",
            f"is {prefetch}, above the {limit} that quorum queues accept",
        )
    return prefetch

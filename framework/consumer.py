"""The consumer declaration: a class per consumer, its settings as class attributes."""

import abc
import difflib
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from framework.actions import Actions
from framework.errors import ConsumerDefinitionError
from framework.message import Message

# Quorum queues refuse a larger prefetch; see RabbitMQ's quorum queue docs.
QUORUM_PREFETCH_LIMIT = 2000


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


VALIDATORS = {
    "queues": check_queues,
    "bulk_size": lambda cls, value: check_positive_int(cls, "bulk_size", value),
    "flush_interval": check_flush_interval,
    "prefetch": check_prefetch,
    "on_success": check_action("on_success"),
    "on_exception": check_action("on_exception"),
    "declare": check_declare,
    "queue_arguments": check_queue_arguments,
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

"""The consumer declaration: a class per consumer, its settings as class attributes.

:class:`BulkConsumer` is the base class; its class attributes and their defaults
are the settings of :class:`~framework.core.consumer_settings.ConsumerSettings`,
where each is defined once. The names of that module are importable from here
too, as the rest of the framework and the docs import them.
"""

import abc
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from framework.core.actions import Actions
from framework.core.consumer_checks import check_given_values, check_unknown_attributes
from framework.core.consumer_settings import (
    DEFAULT_CONNECTION,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_OUTAGE_ERRORS,
    EMPTY_MAPPING,
    SETTING_NAMES,
    SPECS,
    ConsumerSettings,
    declared_default,
)
from framework.core.message import Message

__all__ = [
    "DEFAULT_CONNECTION",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_OUTAGE_ERRORS",
    "EMPTY_MAPPING",
    "SETTING_NAMES",
    "SPECS",
    "BulkConsumer",
    "ConsumerSettings",
    "declared_default",
    "is_runnable",
]


class BulkConsumer(abc.ABC):
    """Base class of every consumer.

    Subclasses declare their settings as class attributes (read through
    inheritance) and implement ``async def handle(self, messages)``. A subclass
    that leaves ``handle`` abstract, or is declared with ``abstract=True``, is a
    base for other consumers and is never run::

        class AuditBase(BulkConsumer, abstract=True):
            bulk_size = 100

    The attributes' defaults and meanings are those of :class:`ConsumerSettings`.
    """

    queues: ClassVar[list[str] | tuple[str, ...]]
    bulk_size: ClassVar[int]
    flush_interval: ClassVar[float | None]
    prefetch: ClassVar[int | None]
    on_success: ClassVar[Actions]
    on_exception: ClassVar[Actions]
    declare: ClassVar[bool]
    queue_arguments: ClassVar[Mapping[str, Any]]
    dead_letter_queue: ClassVar[str | None]
    max_retries: ClassVar[int | None]
    retry_delay: ClassVar[float]
    retry_backoff_max: ClassVar[float]
    outage_errors: ClassVar[tuple[type[BaseException], ...]]
    outage_backoff: ClassVar[float]
    outage_backoff_max: ClassVar[float]
    isolate_failures: ClassVar[bool]
    handler_timeout: ClassVar[float | None]
    model: ClassVar[Any]
    decoder: ClassVar[Callable[[bytes, str | None], Any] | None]
    converter: ClassVar[Any]
    refuse_unknown_keys: ClassVar[bool]
    max_concurrent_bulks: ClassVar[int]
    connection: ClassVar[str]
    group_by: ClassVar[Any]
    stream_offset: ClassVar[Any]
    max_bulk_bytes: ClassVar[int | None]
    adaptive_bulk_size: ClassVar[bool]
    bulk_size_min: ClassVar[int | None]
    bulk_latency_target: ClassVar[float | None]
    partitions: ClassVar[int | None]
    partition_key: ClassVar[Any]
    __bulkworker_abstract__: ClassVar[bool] = True

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__bulkworker_abstract__ = abstract
        check_unknown_attributes(cls, SETTING_NAMES)
        check_given_values(cls, SPECS)
        if is_runnable(cls):
            ConsumerSettings.of(cls)

    @abc.abstractmethod
    async def handle(self, messages: list[Message[Any]]) -> None:
        """Process one bulk; raising settles it with ``on_exception``."""


for _name in SETTING_NAMES:
    setattr(BulkConsumer, _name, declared_default(_name))


def is_runnable(cls: type[BulkConsumer]) -> bool:
    """A concrete consumer: not declared abstract and ``handle`` implemented."""
    return not cls.__dict__.get("__bulkworker_abstract__", False) and not inspect.isabstract(cls)

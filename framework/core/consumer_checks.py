"""A consumer class read into its settings, and checked as a whole when it is defined.

Each setting's own value is checked by its :class:`~framework.core.setting.SettingSpec`;
these checks look at the class: attributes that are no setting, ``handle``,
settings that only make sense together, and the prefetch they add up to.
"""

import difflib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from framework.core.partitions import SINGLE_ACTIVE_CONSUMER, partition_queues
from framework.core.serialization import DEFAULT_CONVERTER, model_problem
from framework.core.setting import SettingSpec, fail
from framework.core.stream import check_stream_rules

if TYPE_CHECKING:
    from framework.core.consumer import BulkConsumer

# Quorum queues refuse a larger prefetch; see RabbitMQ's quorum queue docs.
QUORUM_PREFETCH_LIMIT = 2000


def read_settings(
    consumer: type["BulkConsumer"], specs: Mapping[str, SettingSpec], default_flush_interval: float
) -> dict[str, Any]:
    """Every setting of ``consumer``, read through its MRO, checked, and filled in."""
    declared = {name: getattr(consumer, name) for name in specs}
    for name, value in declared.items():
        specs[name].check(consumer, name, value)
    if not consumer.queues:
        raise fail(consumer, "queues", "is required: name at least one queue to consume")
    check_handle(consumer)
    check_model_fits(consumer)
    check_backoffs(consumer)
    check_stream_rules(consumer)
    check_adaptive(consumer)
    check_partitioning(consumer)
    return {
        **declared,
        **consumed_queues(consumer),
        "flush_interval": float(consumer.flush_interval or default_flush_interval),
        "prefetch": effective_prefetch(consumer),
        "queue_arguments": effective_queue_arguments(consumer),
        "retry_delay": float(consumer.retry_delay),
        "retry_backoff_max": float(consumer.retry_backoff_max),
        "outage_backoff": float(consumer.outage_backoff),
        "outage_backoff_max": float(consumer.outage_backoff_max),
        "handler_timeout": None
        if consumer.handler_timeout is None
        else float(consumer.handler_timeout),
        "bulk_latency_target": None
        if consumer.bulk_latency_target is None
        else float(consumer.bulk_latency_target),
    }


def check_backoffs(consumer: type["BulkConsumer"]) -> None:
    """A cap below its first step would make the backoff shrink."""
    if consumer.outage_backoff_max < consumer.outage_backoff:
        raise fail(
            consumer,
            "outage_backoff_max",
            f"is {consumer.outage_backoff_max!r}, below outage_backoff="
            f"{consumer.outage_backoff!r}: the waits would never grow",
        )
    if consumer.retry_delay > 0 and consumer.retry_backoff_max < consumer.retry_delay:
        raise fail(
            consumer,
            "retry_backoff_max",
            f"is {consumer.retry_backoff_max!r}, below retry_delay={consumer.retry_delay!r}",
        )


def check_model_fits(consumer: type["BulkConsumer"]) -> None:
    """A model the converter cannot read fails now, not on the first message."""
    if consumer.refuse_unknown_keys and consumer.converter is not None:
        raise fail(
            consumer,
            "refuse_unknown_keys",
            "applies to bulkworker's converter only: configure your own converter "
            "with forbid_extra_keys=True instead",
        )
    if consumer.model is None:
        return
    converter = consumer.converter or DEFAULT_CONVERTER
    problem = model_problem(converter, consumer.model)
    if problem is not None:
        raise fail(consumer, "model", problem)


def check_unknown_attributes(cls: type, names: tuple[str, ...]) -> None:
    """Refuse public lower-case class attributes that are not settings (typos)."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name.isupper() or name in names:
            continue
        if callable(value) or inspect.isdatadescriptor(value) or is_injection_marker(value):
            continue
        if isinstance(value, classmethod | staticmethod):
            continue
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise fail(cls, name, f"is not a consumer setting ({hint}settings: {', '.join(names)})")


def is_injection_marker(value: object) -> bool:
    """``Provide[...]`` and friends may stand as class attributes; wiring fills them."""
    return type(value).__module__ == "dependency_injector.wiring"


def check_given_values(cls: type, specs: Mapping[str, SettingSpec]) -> None:
    """Check each setting this class itself sets."""
    for name, spec in specs.items():
        if name in vars(cls):
            spec.check(cls, name, vars(cls)[name])


def check_handle(consumer: type["BulkConsumer"]) -> None:
    handle = inspect.unwrap(consumer.handle)
    if not inspect.iscoroutinefunction(handle):
        raise fail(consumer, "handle", "must be a coroutine: declare it 'async def handle(...)'")


def effective_prefetch(consumer: type["BulkConsumer"]) -> int:
    """``prefetch``, or room for every concurrent bulk and the next one filling."""
    quorum = consumer.queue_arguments.get("x-queue-type") == "quorum"
    limit = QUORUM_PREFETCH_LIMIT if quorum else None
    concurrent = consumer.max_concurrent_bulks
    if consumer.prefetch is None:
        prefetch = (concurrent + 1) * consumer.bulk_size
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
    if prefetch < concurrent * consumer.bulk_size:
        if consumer.prefetch is None:  # the quorum cap made the default too small
            raise fail(
                consumer,
                "max_concurrent_bulks",
                f"is {concurrent}: {concurrent} bulks of {consumer.bulk_size} need a prefetch "
                f"of {concurrent * consumer.bulk_size}, above the {limit} quorum queues accept",
            )
        raise fail(
            consumer,
            "prefetch",
            f"is {prefetch}, too few for {concurrent} bulks of {consumer.bulk_size} at once "
            f"(max_concurrent_bulks): raise it to at least {concurrent * consumer.bulk_size}",
        )
    if limit is not None and prefetch > limit:
        raise fail(
            consumer,
            "prefetch",
            f"is {prefetch}, above the {limit} that quorum queues accept",
        )
    return prefetch


def consumed_queues(consumer: type["BulkConsumer"]) -> dict[str, tuple[str, ...]]:
    """``queues``, or each one's partition queues, and the exchanges in front of them."""
    declared = tuple(consumer.queues)
    if consumer.partitions is None:
        return {"queues": declared, "exchanges": ()}
    expanded = tuple(q for queue in declared for q in partition_queues(queue, consumer.partitions))
    return {"queues": expanded, "exchanges": declared}


def effective_queue_arguments(consumer: type["BulkConsumer"]) -> dict[str, Any]:
    """``queue_arguments``; a partition queue has a single active consumer on top."""
    arguments = dict(consumer.queue_arguments)
    if consumer.partitions is not None:
        arguments[SINGLE_ACTIVE_CONSUMER] = True
    return arguments


def check_partitioning(consumer: type["BulkConsumer"]) -> None:
    """Partition settings that would lose the order they are there to keep fail now."""
    if consumer.partitions is None:
        if consumer.partition_key is not None:
            raise fail(
                consumer,
                "partition_key",
                "is set but partitions is None: set partitions = N to partition the queues",
            )
        return
    if consumer.queue_arguments.get(SINGLE_ACTIVE_CONSUMER, True) is not True:
        raise fail(
            consumer,
            "queue_arguments",
            f"sets {SINGLE_ACTIVE_CONSUMER} to "
            f"{consumer.queue_arguments[SINGLE_ACTIVE_CONSUMER]!r}, but partitions need it: "
            "each partition queue has one active consumer, or keys lose their order",
        )
    if consumer.max_concurrent_bulks > 1 and consumer.group_by is None:
        raise fail(
            consumer,
            "max_concurrent_bulks",
            f"is {consumer.max_concurrent_bulks} with partitions = {consumer.partitions} and no "
            "group_by: bulks handled at once would interleave one key's messages. Set group_by "
            "to the partition key (a header name or a function (message) -> key; bulks of one "
            "key then run one at a time), or max_concurrent_bulks = 1",
        )


def check_adaptive(consumer: type["BulkConsumer"]) -> None:
    """The adaptive settings mean nothing alone, and the range must not be empty."""
    if not consumer.adaptive_bulk_size:
        for name in ("bulk_size_min", "bulk_latency_target"):
            if getattr(consumer, name) is not None:
                raise fail(consumer, name, "has no effect unless adaptive_bulk_size = True")
        return
    minimum = consumer.bulk_size_min
    if minimum is not None and minimum > consumer.bulk_size:
        raise fail(
            consumer,
            "bulk_size_min",
            f"is {minimum}, above bulk_size={consumer.bulk_size}: the adaptive size moves "
            "between the two",
        )

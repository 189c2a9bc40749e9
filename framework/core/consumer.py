"""The consumer declaration: a class per consumer, its settings as class attributes.

Each setting is defined once, as a field of :class:`ConsumerSettings` carrying
its default, its check and its meaning. The class attributes of
:class:`BulkConsumer`, the names accepted at class definition, the checks,
``bulkworker list`` and the settings tables in the docs all derive from it.
"""

import abc
import difflib
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, cast

import attrs
import cattrs

from framework.core import layout
from framework.core.actions import Actions
from framework.core.layout import DEFAULT_DEAD_LETTER_QUEUE, QueueDeclaration
from framework.core.message import Message
from framework.core.partitions import (
    SINGLE_ACTIVE_CONSUMER,
    partition_key_problem,
    partition_queues,
)
from framework.core.serialization import DEFAULT_CONVERTER, json_converter, model_problem
from framework.core.stream import check_stream_offset, check_stream_rules, reads_stream
from framework.errors import ConsumerDefinitionError

# Quorum queues refuse a larger prefetch; see RabbitMQ's quorum queue docs.
QUORUM_PREFETCH_LIMIT = 2000
# The connection a consumer uses unless it names another.
DEFAULT_CONNECTION = "default"
# Seconds a partial bulk waits when neither the consumer nor the deployment says.
DEFAULT_FLUSH_INTERVAL = 60.0
SETTING = "bulkworker.setting"
# Shared by every consumer that sets no queue arguments, so it must not change.
EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})
# What a sink's client raises when it cannot be reached (asyncpg, aiohttp, motor... all do).
DEFAULT_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)

Check = Callable[[type, str, Any], None]


@attrs.frozen
class SettingSpec:
    """What the framework knows of one consumer setting besides its default."""

    check: Check
    meaning: str
    shown_default: str
    listed: bool = False  # a column of `bulkworker list`
    unit: str = ""


def fail(cls: type, attribute: str, problem: str) -> ConsumerDefinitionError:
    return ConsumerDefinitionError(f"{cls.__name__}.{attribute} {problem}")


def setting(
    default: Any,
    check: Check,
    meaning: str,
    shown_default: str | None = None,
    *,
    listed: bool = False,
    unit: str = "",
) -> Any:
    """A consumer setting: a field of ConsumerSettings and a class attribute of BulkConsumer."""
    shown = f"`{default!r}`" if shown_default is None else shown_default
    spec = SettingSpec(check, meaning, shown, listed, unit)
    return attrs.field(default=default, metadata={SETTING: spec})


def check_queue_names(cls: type, name: str, value: object) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise fail(cls, name, f"must be a list of queue names, got {value!r}")
    for queue in value:
        if not isinstance(queue, str) or not queue:
            raise fail(cls, name, f"must hold non-empty strings, got {queue!r}")
    if len(set(value)) != len(value):
        raise fail(cls, name, f"names a queue twice: {value!r}")


def check_positive_int(cls: type, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(cls, name, f"must be a whole number of at least 1, got {value!r}")


def check_optional_positive_int(cls: type, name: str, value: object) -> None:
    if value is not None:
        check_positive_int(cls, name, value)


def check_seconds(cls: type, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(cls, name, f"must be a number of seconds above 0, got {value!r}")


def check_optional_seconds(cls: type, name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise fail(cls, name, f"must be a number of seconds above 0, or None, got {value!r}")


def check_flush_interval(cls: type, name: str, value: object) -> None:
    if value is not None:
        check_seconds(cls, name, value)


def check_action(cls: type, name: str, value: object) -> None:
    if not isinstance(value, Actions):
        raise fail(cls, name, f"must be one of Actions.ACK/REQUEUE/REJECT, got {value!r}")


def check_flag(cls: type, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise fail(cls, name, f"must be True or False, got {value!r}")


def check_queue_arguments(cls: type, name: str, value: object) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise fail(cls, name, f"must be a dict with string keys, got {value!r}")


def check_dead_letter_queue(cls: type, name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value:
        raise fail(cls, name, f"must be a queue name or None, got {value!r}")
    try:
        value.format(queue="q")
    except (KeyError, IndexError, ValueError):
        raise fail(cls, name, f"may only use {{queue}} as a placeholder, got {value!r}") from None


def check_max_retries(cls: type, name: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise fail(cls, name, f"must be a whole number of at least 0, or None, got {value!r}")


def check_retry_delay(cls: type, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise fail(cls, name, f"must be a number of seconds of at least 0, got {value!r}")


def check_outage_errors(cls: type, name: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
    ):
        raise fail(
            cls,
            name,
            f"must be a tuple of exception classes, e.g. (ConnectionError,), got {value!r}",
        )


def check_model(cls: type, name: str, value: object) -> None:
    if value is None or isinstance(value, type) or typing.get_origin(value) is not None:
        return
    raise fail(
        cls, name, f"must be a class (e.g. an attrs class) or a type like list[int], got {value!r}"
    )


def check_converter(cls: type, name: str, value: object) -> None:
    if value is not None and not isinstance(value, cattrs.BaseConverter):
        raise fail(cls, name, f"must be a cattrs converter, or None, got {value!r}")


def check_connection_name(cls: type, name: str, value: object) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise fail(
            cls,
            name,
            f"must name a connection in lower case letters, digits and _ (its URL comes from "
            f"BULKWORKER_AMQP_URL_<NAME>), got {value!r}",
        )


def check_group_by(cls: type, name: str, value: object) -> None:
    if value is None or callable(value) or (isinstance(value, str) and value):
        return
    raise fail(
        cls, name, f"must be a function (message) -> key, a header name, or None, got {value!r}"
    )


def check_partition_key(cls: type, name: str, value: object) -> None:
    problem = partition_key_problem(value)
    if problem is not None:
        raise fail(cls, name, problem)


def check_decoder(cls: type, name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise fail(
            cls, name, f"must be a function (raw: bytes, content_type) -> body, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class ConsumerSettings:
    """A consumer class's effective settings, every default filled in.

    ``flush_interval`` and ``prefetch`` are declared as ``None`` ("derive it");
    :meth:`of` fills in the deployment's flush interval and the derived prefetch.
    """

    name: str
    queues: tuple[str, ...] = setting(
        (),
        check_queue_names,
        "one or more queue names; a bulk may mix them, `Message.queue` tells which",
        "required",
        listed=True,
    )
    bulk_size: int = setting(1, check_positive_int, "most messages per `handle` call", listed=True)
    prefetch: int = setting(
        None,
        check_optional_positive_int,
        "unacked messages the broker sends ahead, per queue; below `bulk_size` (with "
        "`max_concurrent_bulks`, below that many bulks) is an error; quorum queues: at most 2000",
        "`(max_concurrent_bulks + 1) * bulk_size`",
        listed=True,
    )
    flush_interval: float = setting(
        None,
        check_flush_interval,
        "seconds a partial bulk waits, counted from its first message",
        "`BULKWORKER_FLUSH_INTERVAL`, else `60`",
        listed=True,
        unit="s",
    )
    on_success: Actions = setting(
        Actions.ACK,
        check_action,
        "how messages are settled when `handle` returns",
        "`Actions.ACK`",
        listed=True,
    )
    on_exception: Actions = setting(
        Actions.REQUEUE,
        check_action,
        "how messages are settled when `handle` raises",
        "`Actions.REQUEUE`",
        listed=True,
    )
    declare: bool = setting(
        True,
        check_flag,
        "declare each queue (durable) with `queue_arguments`; `False`: the queues must exist",
        listed=True,
    )
    queue_arguments: Mapping[str, Any] = setting(
        EMPTY_MAPPING,
        check_queue_arguments,
        'arguments for declaring, e.g. `{"x-queue-type": "quorum"}`; a queue that exists with '
        "other arguments is a startup error",
        "`{}`",
        listed=True,
    )
    dead_letter_queue: str | None = setting(
        DEFAULT_DEAD_LETTER_QUEUE,
        check_dead_letter_queue,
        "where rejected, undecodable and exhausted messages are moved, with the reason in their "
        "headers; `{queue}` is the queue they came from; `None`: reject to the broker instead "
        "(its dead-letter exchange, or dropped)",
        '`"{queue}.dlq"`',
        listed=True,
    )
    max_retries: int | None = setting(
        5,
        check_max_retries,
        "how often `REQUEUE` returns a message for another attempt before it is dead-lettered; "
        "`None`: unbounded plain requeues",
        listed=True,
    )
    retry_delay: float = setting(
        0.0,
        check_retry_delay,
        "seconds the first retry of a message waits (in `<queue>.retry`) before it is handled "
        "again; each further retry waits twice as long, up to `retry_backoff_max`; the "
        "consumer is not blocked",
        "`0`",
        listed=True,
        unit="s",
    )
    retry_backoff_max: float = setting(
        300.0,
        check_seconds,
        "the longest `retry_delay` grows to: retry n waits `retry_delay * 2 ** (n - 1)`, at most "
        "this (`retry_delay=2`: 2, 4, 8, 16, 32 … 300 s)",
        "`300`",
        unit="s",
    )
    outage_errors: tuple[type[BaseException], ...] = setting(
        DEFAULT_OUTAGE_ERRORS,
        check_outage_errors,
        "exceptions from `handle` that mean the sink is unavailable (an outage, not a bad "
        "message): never counted against `max_retries`, never dead-lettered; the consumer "
        "pauses and probes with the same bulk. `SinkUnavailable` always counts, "
        "`HandlerTimeoutError` only when named here",
        "`(ConnectionError, TimeoutError, OSError)`",
    )
    outage_backoff: float = setting(
        1.0,
        check_seconds,
        "seconds before the first probe after an outage; each failed probe doubles the wait "
        "(stretched by up to 25 % at random)",
        "`1`",
        listed=True,
        unit="s",
    )
    outage_backoff_max: float = setting(
        60.0,
        check_seconds,
        "the longest wait between two probes while the sink is unavailable",
        "`60`",
        unit="s",
    )
    isolate_failures: bool = setting(
        False,
        check_flag,
        "when `handle` raises on a bulk, run halves again so only the messages that fail alone "
        "get `on_exception`",
    )
    handler_timeout: float | None = setting(
        None,
        check_optional_seconds,
        "seconds after which a `handle` call is cancelled and counts as raising",
    )
    model: Any = setting(
        None,
        check_model,
        "a class (attrs, or any type cattrs can structure) each body is turned into before it "
        "joins a bulk; a body that does not fit is dead-lettered alone, the field and the reason "
        "in its headers",
    )
    decoder: Callable[[bytes, str | None], Any] | None = setting(
        None,
        check_decoder,
        "a function `(raw: bytes, content_type) -> body` for formats of your own; anything it "
        "raises dead-letters the message",
    )
    converter: Any = setting(
        None,
        check_converter,
        "the cattrs converter that reads bodies into `model`; `None`: bulkworker's JSON "
        "converter (datetime, date, UUID, Decimal, enums, nested attrs; no type coercion)",
    )
    refuse_unknown_keys: bool = setting(
        False,
        check_flag,
        "dead-letter a body whose object has keys `model` has no field for (by default they "
        "are ignored); for bulkworker's converter only",
    )

    max_concurrent_bulks: int = setting(
        1,
        check_positive_int,
        "bulks of this consumer handled at once; `1` keeps arrival order. Acks stay exact: "
        "none covers a message whose bulk is still being handled",
        listed=True,
    )
    connection: str = setting(
        DEFAULT_CONNECTION,
        check_connection_name,
        "the connection to consume on, and to move retries and dead letters through: its URL "
        "is `BULKWORKER_AMQP_URL_<NAME>` (`default`: `BULKWORKER_AMQP_URL`)",
        listed=True,
    )
    group_by: Any = setting(
        None,
        check_group_by,
        "bulks of one key each: a function `(message) -> key`, or a header name; each key "
        "fills its own bulk, with its own flush interval; `None`: one bulk for all. With "
        "`max_concurrent_bulks > 1`, bulks of one key run one at a time, in order",
    )
    stream_offset: Any = setting(
        None,
        check_stream_offset,
        'where reading a stream queue (`"x-queue-type": "stream"`) starts: `"first"`, '
        '`"last"`, `"next"`, an offset, an aware `datetime` or an interval like `"1h"`; a '
        "`stored_offset(queue)` method returning the last offset you stored wins, and a "
        "reconnect resumes after the last settled message",
        '`None` (`"next"`)',
    )
    max_bulk_bytes: int | None = setting(
        None,
        check_optional_positive_int,
        "most bytes per bulk, counting each message's body as received (`len(message.raw)`, "
        "before decoding; headers not counted): a bulk goes before the next message would pass "
        "it, a larger message goes alone; per key with `group_by`; `None`: no limit",
        unit="B",
    )
    adaptive_bulk_size: bool = setting(
        False,
        check_flag,
        "adapt the bulk size to the sink: start at `bulk_size_min`, grow by steps while the time "
        "per message does not rise, halve when `handle` fails, times out or passes "
        "`bulk_latency_target`; never above `bulk_size`",
    )
    bulk_size_min: int | None = setting(
        None,
        check_optional_positive_int,
        "the smallest bulk size `adaptive_bulk_size` goes down to, and where it starts",
        "`1`",
    )
    bulk_latency_target: float | None = setting(
        None,
        check_optional_seconds,
        "seconds a `handle` call may take with `adaptive_bulk_size`: a slower bulk halves the "
        "size; `None`: only failures and a rising time per message shrink it",
        unit="s",
    )
    partitions: int | None = setting(
        None,
        check_optional_positive_int,
        "split each queue into this many queues `<queue>.p0` … behind a consistent-hash "
        "exchange named `<queue>`, each with a single active consumer: one key is handled by "
        "one worker at a time, in order. Fixed once declared; needs the "
        "`rabbitmq_consistent_hash_exchange` plugin",
        listed=True,
    )
    partition_key: Any = setting(
        None,
        check_partition_key,
        "where the publisher helper finds a message's key: `'headers.<name>'`, "
        "`'body.<field>'` (dotted for nested fields) or a function `(message) -> str`",
    )
    # The declared queue names that are consistent-hash exchanges (``partitions`` set):
    # ``queues`` then holds their partition queues, which is what is consumed.
    exchanges: tuple[str, ...] = ()

    def model_converter(self) -> cattrs.BaseConverter:
        """The converter that reads bodies into ``model``."""
        if self.converter is not None:
            return cast(cattrs.BaseConverter, self.converter)
        return STRICT_KEYS_CONVERTER if self.refuse_unknown_keys else DEFAULT_CONVERTER

    def dead_letter_queue_for(self, queue: str) -> str | None:
        """Where messages of ``queue`` are dead-lettered; None: rejected to the broker."""
        return layout.dead_letter_queue(self.dead_letter_queue, queue)

    def retry_queue_for(self, queue: str) -> str | None:
        """Where retries of ``queue`` wait out ``retry_delay``; None: straight back."""
        return layout.retry_queue(queue) if self.retry_delay > 0 else None

    def declarations_for(self, queue: str) -> list[QueueDeclaration]:
        """``queue`` and what the framework needs beside it."""
        needed = [QueueDeclaration(queue, self.queue_arguments, "queue")]
        dead = self.dead_letter_queue_for(queue)
        if dead is not None:
            needed.append(QueueDeclaration(dead, {}, "dead-letter queue"))
        retry = self.retry_queue_for(queue)
        if retry is not None:
            arguments = layout.retry_queue_arguments(queue)
            needed.append(QueueDeclaration(retry, arguments, "retry queue"))
        return needed

    def declarations(self) -> list[QueueDeclaration]:
        """Every queue this consumer needs, each once (a shared dead-letter queue too)."""
        needed: dict[str, QueueDeclaration] = {}
        for queue in self.queues:
            for declaration in self.declarations_for(queue):
                needed.setdefault(declaration[0], declaration)
        return list(needed.values())

    def retry_wait(self, attempt: int) -> float:
        """Seconds retry number ``attempt`` (1 for the first) waits: doubling, capped."""
        if self.retry_delay <= 0:
            return 0.0
        doublings = min(max(attempt - 1, 0), 64)
        return float(min(self.retry_backoff_max, self.retry_delay * 2**doublings))

    @property
    def reads_stream(self) -> bool:
        """The queues are streams: read by offset, never given back (see ``core/stream.py``)."""
        return reads_stream(self.queue_arguments)

    @property
    def bounded_retries(self) -> bool:
        """False for asyncworker's behaviour: REQUEUE is a plain broker requeue."""
        return self.max_retries is not None or self.retry_delay > 0

    @classmethod
    def of(
        cls, consumer: type["BulkConsumer"], default_flush_interval: float = DEFAULT_FLUSH_INTERVAL
    ) -> "ConsumerSettings":
        """Read and check every setting of ``consumer`` through its MRO."""
        declared = {name: getattr(consumer, name) for name in SETTING_NAMES}
        for name, value in declared.items():
            SPECS[name].check(consumer, name, value)
        if not consumer.queues:
            raise fail(consumer, "queues", "is required: name at least one queue to consume")
        check_handle(consumer)
        check_model_fits(consumer)
        check_backoffs(consumer)
        check_stream_rules(consumer)
        check_adaptive(consumer)
        check_partitioning(consumer)
        return cls(
            **{
                **declared,
                "name": consumer.__name__,
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
        )


STRICT_KEYS_CONVERTER = json_converter(forbid_extra_keys=True)


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


SPECS: dict[str, SettingSpec] = {
    field.name: field.metadata[SETTING]
    for field in attrs.fields(ConsumerSettings)
    if SETTING in field.metadata
}
SETTING_NAMES = tuple(SPECS)


def declared_default(name: str) -> Any:
    """The class attribute a consumer gets when it does not set ``name``."""
    return attrs.fields_dict(ConsumerSettings)[name].default


def listed_cells(settings: ConsumerSettings) -> dict[str, str]:
    """The ``bulkworker list`` columns of one consumer, as text."""
    return {
        name: shown_value(getattr(settings, name), spec.unit)
        for name, spec in SPECS.items()
        if spec.listed
    }


def shown_value(value: Any, unit: str = "") -> str:
    if isinstance(value, Actions):
        return value.name
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, Mapping):
        return str(dict(value)) if value else "-"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    return f"{value}{unit}"


def settings_table() -> str:
    """The Markdown table of consumer settings, as README and the reference show it."""
    rows = ["| attribute | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {s.shown_default} | {s.meaning} |" for name, s in SPECS.items()]
    return "\n".join(rows)


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
        check_unknown_attributes(cls)
        check_given_values(cls)
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
    """Check each setting this class itself sets."""
    for name, spec in SPECS.items():
        if name in vars(cls):
            spec.check(cls, name, vars(cls)[name])


def check_handle(consumer: type[BulkConsumer]) -> None:
    handle = inspect.unwrap(consumer.handle)
    if not inspect.iscoroutinefunction(handle):
        raise fail(consumer, "handle", "must be a coroutine: declare it 'async def handle(...)'")


def effective_prefetch(consumer: type[BulkConsumer]) -> int:
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

"""Every consumer setting, defined once: its default, its check and its meaning.

Each setting is a field of :class:`ConsumerSettings`. The class attributes of
:class:`~framework.core.consumer.BulkConsumer`, the names accepted at class
definition, the checks, ``bulkworker list`` and the settings tables in the docs
all derive from it. How a setting is declared and checked is in
:mod:`framework.core.setting`, what follows from the settings in
:mod:`framework.core.derived_settings`, the checks of a class as a whole in
:mod:`framework.core.consumer_checks`, and the tables in
:mod:`framework.core.settings_table`.
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from framework.core.actions import Actions
from framework.core.consumer_checks import read_settings
from framework.core.derived_settings import DerivedSettings
from framework.core.layout import DEFAULT_DEAD_LETTER_QUEUE
from framework.core.setting import (
    SETTING,
    SettingSpec,
    check_action,
    check_connection_name,
    check_converter,
    check_dead_letter_queue,
    check_decoder,
    check_flag,
    check_flush_interval,
    check_group_by,
    check_max_retries,
    check_model,
    check_optional_positive_int,
    check_optional_seconds,
    check_outage_errors,
    check_partition_key,
    check_positive_int,
    check_queue_arguments,
    check_queue_names,
    check_retry_delay,
    check_seconds,
    setting,
)
from framework.core.stream import check_stream_offset

if TYPE_CHECKING:
    from framework.core.consumer import BulkConsumer

# The connection a consumer uses unless it names another.
DEFAULT_CONNECTION = "default"
# Seconds a partial bulk waits when neither the consumer nor the deployment says.
DEFAULT_FLUSH_INTERVAL = 60.0
# Shared by every consumer that sets no queue arguments, so it must not change.
EMPTY_MAPPING: Mapping[str, Any] = MappingProxyType({})
# What a sink's client raises when it cannot be reached (asyncpg, aiohttp, motor... all do).
DEFAULT_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)


@attrs.frozen(kw_only=True)
class ConsumerSettings(DerivedSettings):
    """A consumer class's effective settings, every default filled in.

    ``flush_interval`` and ``prefetch`` are declared as ``None`` ("derive it");
    :meth:`of` fills in the deployment's flush interval and the derived prefetch.
    What follows from the settings (the queues to declare, retry waits, the
    converter) is inherited from :class:`DerivedSettings`.
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

    @classmethod
    def of(
        cls, consumer: type["BulkConsumer"], default_flush_interval: float = DEFAULT_FLUSH_INTERVAL
    ) -> "ConsumerSettings":
        """Read and check every setting of ``consumer`` through its MRO."""
        return cls(name=consumer.__name__, **read_settings(consumer, SPECS, default_flush_interval))


SPECS: dict[str, SettingSpec] = {
    field.name: field.metadata[SETTING]
    for field in attrs.fields(ConsumerSettings)
    if SETTING in field.metadata
}
SETTING_NAMES = tuple(SPECS)


def declared_default(name: str) -> Any:
    """The class attribute a consumer gets when it does not set ``name``."""
    return attrs.fields_dict(ConsumerSettings)[name].default

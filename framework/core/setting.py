"""The machinery of consumer settings: how one is declared, and the checks of its value.

A setting is a field of :class:`~framework.core.consumer_settings.ConsumerSettings`
made by :func:`setting`: its default, the check its value must pass when a
consumer class is defined, and its meaning. Each check raises
:class:`~framework.errors.ConsumerDefinitionError` naming the class and the
attribute.
"""

import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import cattrs

from framework.core.actions import Actions
from framework.core.partitions import partition_key_problem
from framework.errors import ConsumerDefinitionError

SETTING = "bulkworker.setting"

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


def check_decoder(cls: type, name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise fail(
            cls, name, f"must be a function (raw: bytes, content_type) -> body, got {value!r}"
        )


def check_partition_key(cls: type, name: str, value: object) -> None:
    problem = partition_key_problem(value)
    if problem is not None:
        raise fail(cls, name, problem)

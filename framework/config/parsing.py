"""Parsing the text of a ``BULKWORKER_*`` variable into a setting's value.

Each parser takes the variable's name and its raw text, and raises
:class:`~framework.errors.ConfigurationError` naming the variable and what it
wanted when the text does not fit.
"""

import math
from collections.abc import Callable
from typing import Any

from framework.amqp.urls import redact, split_amqp_urls
from framework.errors import ConfigurationError

FORMATS = ("console", "json")


def number(
    kind: Callable[[str], float], low: float, high: float, above_low: bool, wanted: str
) -> Callable[[str, str], Any]:
    """A parser for a number in a range, whose error says what was ``wanted``."""

    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be {wanted}, got {raw!r}") from None
        if not (value > low if above_low else value >= low) or value > high:
            raise ConfigurationError(f"{name} must be {wanted}, got {raw!r}")
        return value

    return parse


positive_seconds = number(float, 0, math.inf, True, "a number of seconds above 0")
seconds_or_off = number(float, 0, math.inf, False, "a number of seconds, or 0 for off")
port = number(int, 0, 65535, False, "a TCP port from 0 to 65535")
workers = number(int, 1, math.inf, False, "a whole number of at least 1")
worker_index = number(int, 0, math.inf, False, "a whole number of at least 0")


def switch(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("on", "off", "1", "0", "true", "false"):
        raise ConfigurationError(f"{name} must be on or off, got {raw!r}")
    return value in ("on", "1", "true")


def text(name: str, raw: str) -> str:
    return raw


def amqp_urls(name: str, raw: str) -> str:
    """``raw`` checked to be one or more comma-separated RabbitMQ URLs, then kept as given."""
    split_amqp_urls(raw, name)
    return raw.strip()


def postgres_dsn(name: str, raw: str) -> str:
    """``raw`` checked to be a PostgreSQL URL; its password never appears in the error."""
    value = raw.strip()
    if not value.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            f"{name} must be a URL like postgresql://user:password@host:5432/database, "
            f"got {redact(value)!r}"
        )
    return value


def parse_format(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in (*FORMATS, "auto"):
        raise ConfigurationError(f"{name} must be console, json or auto, got {raw!r}")
    return value


def class_path(name: str, raw: str) -> str:
    """``raw`` checked to be ``MODULE:NAME`` (a class, or a function that makes one)."""
    module, _, class_name = raw.strip().partition(":")
    if not module or not class_name:
        raise ConfigurationError(f"{name} must be MODULE:CLASS or MODULE:FUNCTION, got {raw!r}")
    return raw.strip()

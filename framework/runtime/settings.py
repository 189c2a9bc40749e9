"""Deployment settings: environment variables read into the container's ``config``."""

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from dependency_injector import providers
from yarl import URL

from framework.errors import ConfigurationError

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"


def positive_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(f"{name} must be a number of seconds above 0, got {raw!r}")
    return value


def text(name: str, raw: str) -> str:
    return raw


AMQP_SCHEMES = ("amqp", "amqps")
URL_FORM = "amqp://user:password@host:5672/vhost"
# The password of a URL, whether or not the rest of it parses: up to the last
# "@" before the path (a raw "@" in a password is not unusual).
PASSWORD = re.compile(r"(://[^:/@,]*:)[^/,]*@")


def redact(url: str) -> str:
    """``url`` (one or several, comma-separated) with every password masked."""
    return PASSWORD.sub(r"\1******@", url)


def amqp_urls(name: str, raw: str) -> str:
    """``raw`` checked to be one or more comma-separated RabbitMQ URLs, then kept as given."""
    split_amqp_urls(raw, name)
    return raw.strip()


def split_amqp_urls(raw: str, name: str = "BULKWORKER_AMQP_URL") -> tuple[URL, ...]:
    """Each node's URL of a comma-separated list, in order; a bad one is a ConfigurationError.

    A comma inside a password must be written ``%2C``.
    """
    parts = [part.strip() for part in raw.split(",")]
    if not raw.strip() or "" in parts:
        raise ConfigurationError(
            f"{name} must be one or more comma-separated URLs like {URL_FORM}, got {redact(raw)!r}"
        )
    return tuple(amqp_url(part, name) for part in parts)


def amqp_url(raw: str, name: str) -> URL:
    try:
        url = URL(raw)
        problem = url_problem(url)
    except ValueError as error:
        problem = str(error).rstrip(".")
    if problem:
        raise ConfigurationError(
            f"{name}: {redact(raw)!r} is not a RabbitMQ URL ({problem}); expected {URL_FORM}"
        )
    return url


def url_problem(url: URL) -> str | None:
    if url.scheme not in AMQP_SCHEMES:
        return f"the scheme must be amqp or amqps, not {url.scheme or 'missing'!r}"
    if not url.host:
        return "no host"
    if url.explicit_port == 0:
        return "port 0"
    return None


@attrs.frozen
class Setting:
    """One deployment setting: its ``config`` key, environment variable and default."""

    key: str
    env: str
    default: Any
    parse: Callable[[str, str], Any]
    meaning: str


SETTINGS = (
    Setting(
        "amqp_url",
        "BULKWORKER_AMQP_URL",
        DEFAULT_AMQP_URL,
        amqp_urls,
        "RabbitMQ URL; the path selects the vhost (`amqp://user:pass@host:5672/vhost`). "
        "For a cluster, each node's URL, comma-separated: the first that answers is used, "
        "the next after a lost connection",
    ),
    Setting(
        "flush_interval",
        "BULKWORKER_FLUSH_INTERVAL",
        60.0,
        positive_seconds,
        "seconds a partial bulk waits, for consumers that set no `flush_interval`",
    ),
    Setting(
        "log_level",
        "BULKWORKER_LOG_LEVEL",
        "INFO",
        text,
        "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    ),
    Setting(
        "connect_timeout",
        "BULKWORKER_CONNECT_TIMEOUT",
        60.0,
        positive_seconds,
        "seconds to keep retrying the first connection, with backoff, before giving up",
    ),
    Setting(
        "reconnect_max_delay",
        "BULKWORKER_RECONNECT_MAX_DELAY",
        30.0,
        positive_seconds,
        "longest pause between reconnection attempts (the pause doubles up to it)",
    ),
    Setting(
        "shutdown_timeout",
        "BULKWORKER_SHUTDOWN_TIMEOUT",
        30.0,
        positive_seconds,
        "seconds a graceful shutdown may take before unsettled messages are left to the broker",
    ),
)


def load_environment(
    config: providers.Configuration, environ: Mapping[str, str] | None = None
) -> None:
    """Fill each setting ``config`` does not have yet from the environment, else its default.

    Values set on ``config`` in code (``container.config.amqp_url.from_value(...)``)
    are kept: they win over the environment.
    """
    environ = os.environ if environ is None else environ
    for setting in SETTINGS:
        if config.get(setting.key) is not None:
            continue
        raw = environ.get(setting.env, "")
        value = setting.parse(setting.env, raw) if raw else setting.default
        config.set(setting.key, value)


SETTINGS_BY_KEY = {setting.key: setting for setting in SETTINGS}


def value_of(key: str, given: Any, environ: Mapping[str, str] | None = None) -> Any:
    """``given`` if set, else the environment's value, else the default.

    For resources used without an Orchestrator (``await container.init_resources()``),
    whose ``config`` nobody filled from the environment.
    """
    if given is not None:
        return given
    setting = SETTINGS_BY_KEY[key]
    raw = (os.environ if environ is None else environ).get(setting.env, "")
    return setting.parse(setting.env, raw) if raw else setting.default

"""Deployment settings: resolved once, from code, the environment or defaults, into one object.

Each setting is defined once, in :data:`SETTINGS`. :func:`resolve_deployment`
reads them into a frozen :class:`Deployment` (a value set on the container's
``config`` in code wins, then the ``BULKWORKER_*`` variable, then the
default); the container's ``settings`` provider does so once, and the
resources, the orchestrator, the harness and the command read that object.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from dependency_injector import providers

from framework.config.parsing import (
    amqp_urls,
    class_path,
    parse_format,
    port,
    positive_seconds,
    postgres_dsn,
    seconds_or_off,
    switch,
    text,
    worker_index,
    workers,
)
from framework.core.consumer import DEFAULT_CONNECTION, DEFAULT_FLUSH_INTERVAL

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"
NAMED_URL_PREFIX = "BULKWORKER_AMQP_URL_"


@attrs.frozen
class Setting:
    """One deployment setting: its ``config`` key, environment variable and default."""

    key: str
    env: str
    default: Any
    parse: Callable[[str, str], Any]
    meaning: str

    def value(self, given: Any, environ: Mapping[str, str]) -> Any:
        """``given`` if set, else the environment's value, else the default."""
        if given is not None:
            return given
        raw = environ.get(self.env, "")
        return self.parse(self.env, raw) if raw else self.default


SETTINGS = (
    Setting(
        "amqp_url",
        "BULKWORKER_AMQP_URL",
        DEFAULT_AMQP_URL,
        amqp_urls,
        "RabbitMQ URL; the path selects the vhost (`amqp://user:pass@host:5672/vhost`); "
        "aio-pika's URL options (`?heartbeat=30`) apply. For a cluster, each node's URL, "
        "comma-separated (`amqp://u:p@rabbit-1/vh,amqp://u:p@rabbit-2/vh`): the first that "
        "answers is used, the next after a lost connection; options are read from the first "
        "URL; a comma in a password is written `%2C`",
    ),
    Setting(
        "flush_interval",
        "BULKWORKER_FLUSH_INTERVAL",
        DEFAULT_FLUSH_INTERVAL,
        positive_seconds,
        "seconds a partial bulk waits, for consumers that set no `flush_interval`",
    ),
    Setting(
        "log_level",
        "BULKWORKER_LOG_LEVEL",
        "INFO",
        text,
        "DEBUG, INFO, WARNING, ERROR or CRITICAL; also for the application's own `logging` "
        "records, which are written to the same stream",
    ),
    Setting(
        "log_format",
        "BULKWORKER_LOG_FORMAT",
        "auto",
        parse_format,
        "`console` (`time level logger: message key=value`), `json` (one flat object per "
        "line) or `auto`: console when standard output is a terminal, else JSON",
    ),
    Setting(
        "log_stats_interval",
        "BULKWORKER_LOG_STATS_INTERVAL",
        60.0,
        seconds_or_off,
        "seconds between the INFO summaries of each busy consumer (messages per second, "
        "bulks, retries, dead letters); `0`: none",
    ),
    Setting(
        "http_port",
        "BULKWORKER_HTTP_PORT",
        None,
        port,
        "serve `/metrics`, `/health/live` and `/health/ready` on this port (`0`: any free "
        "port); unset: no HTTP server",
    ),
    Setting(
        "http_host",
        "BULKWORKER_HTTP_HOST",
        "127.0.0.1",
        text,
        "the address the HTTP server listens on; `0.0.0.0` for probes from outside the "
        "host (Kubernetes)",
    ),
    Setting(
        "metrics",
        "BULKWORKER_METRICS",
        True,
        switch,
        "`on` or `off`: collect the Prometheus metrics",
    ),
    Setting(
        "workers",
        "BULKWORKER_WORKERS",
        1,
        workers,
        "worker processes `bulkworker run` starts; above 1, a supervisor runs them",
    ),
    Setting(
        "worker_id",
        "BULKWORKER_WORKER_ID",
        0,
        worker_index,
        "this worker's index, `0` to `workers - 1`; set by the supervisor",
    ),
    Setting(
        "worker_count",
        "BULKWORKER_WORKER_COUNT",
        1,
        workers,
        "how many workers the supervisor runs, set by it: a partitioned consumer's worker "
        "`i` takes partitions `p` with `p % worker_count == i` first",
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
        "longest pause between reconnection attempts, and between tries of a retry or "
        "dead-letter copy the broker refused (the pause doubles up to it)",
    ),
    Setting(
        "consumer_timeout",
        "BULKWORKER_CONSUMER_TIMEOUT",
        1800.0,
        positive_seconds,
        "the broker's `consumer_timeout` in seconds (RabbitMQ's default: 30 min): while a "
        "sink is unavailable, held messages are given back after half of it; a queue's own "
        "`x-consumer-timeout` argument counts when shorter",
    ),
    Setting(
        "shutdown_timeout",
        "BULKWORKER_SHUTDOWN_TIMEOUT",
        30.0,
        positive_seconds,
        "seconds a graceful shutdown may take before unsettled messages are left to the broker",
    ),
    Setting(
        "postgres_dsn",
        "BULKWORKER_POSTGRES_DSN",
        None,
        postgres_dsn,
        "the PostgreSQL database of the container's `postgres` pool "
        "(`postgresql://user:password@host:5432/database`), opened when a consumer or task "
        'first asks for `Provide["postgres"]`; unset: asking for it fails the start',
    ),
    Setting(
        "postgres_pool_size",
        "BULKWORKER_POSTGRES_POOL_SIZE",
        10,
        workers,
        "the most connections the `postgres` pool opens",
    ),
    Setting(
        "inbox_retention",
        "BULKWORKER_INBOX_RETENTION",
        604800.0,
        positive_seconds,
        "seconds a bulk inbox remembers a message id (`604800`: 7 days); `InboxPruning` "
        "deletes older ones",
    ),
    Setting(
        "elasticsearch_url",
        "BULKWORKER_ELASTICSEARCH_URL",
        None,
        text,
        "Elasticsearch URL for the container's `elasticsearch` client "
        "(`http://user:pass@host:9200`; several nodes comma-separated), opened when a consumer "
        "first asks for it; needs `bulkworker[elasticsearch]`",
    ),
    Setting(
        "mongodb_url",
        "BULKWORKER_MONGODB_URL",
        None,
        text,
        "MongoDB connection string for the container's `mongodb` client "
        "(`mongodb://user:pass@host:27017/?replicaSet=rs0`), opened when a consumer first asks "
        "for it; needs `bulkworker[mongodb]`",
    ),
    Setting(
        "container",
        "BULKWORKER_CONTAINER",
        None,
        class_path,
        "the container for `bulkworker run` and `list` of a package: `MODULE:CLASS`, or "
        "`MODULE:FUNCTION` returning a container (`--container` wins); unset: "
        "`framework.Container`",
    ),
)


def deployment_table() -> str:
    """The rows of the environment variables table in docs/configuration.md, one a setting.

    Regenerate them with ``python -c "from framework.config.deployment import
    deployment_table as t; print(t())"``.
    """
    return "\n".join(
        f"| `{s.env}` | `{s.key}` | `{shown(s.default)}` | {s.meaning} |" for s in SETTINGS
    )


def shown(default: Any) -> str:
    # As the docs write them: 60, not 60.0; on/off; unset for no value.
    if isinstance(default, bool):
        return "on" if default else "off"
    if default is None:
        return "unset"
    return f"{default:g}" if isinstance(default, float) else str(default)


@attrs.frozen
class Deployment:
    """The deployment settings of one process, resolved once (see :data:`SETTINGS`)."""

    amqp_url: str
    flush_interval: float
    log_level: str
    log_format: str
    log_stats_interval: float
    http_port: int | None
    http_host: str
    metrics: bool
    workers: int
    worker_id: int
    worker_count: int
    connect_timeout: float
    reconnect_max_delay: float
    consumer_timeout: float
    shutdown_timeout: float
    container: str | None
    postgres_dsn: str | None = attrs.field(repr=False)
    postgres_pool_size: int
    inbox_retention: float
    elasticsearch_url: str | None = None
    mongodb_url: str | None = None
    # Named connections: BULKWORKER_AMQP_URL_<NAME>, or config.amqp_urls.<name>.
    amqp_urls: Mapping[str, str] = attrs.field(factory=dict)

    def url_for(self, connection: str) -> str | None:
        """The URL of a named connection (``default``: ``amqp_url``); None if not set."""
        if connection == DEFAULT_CONNECTION:
            return self.amqp_url
        return self.amqp_urls.get(connection)


def resolve_deployment(
    given: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Deployment:
    """Every setting: from ``given`` (the container's ``config``), else the environment, else
    its default. A bad environment value raises :class:`ConfigurationError` naming it.
    """
    given = given or {}
    environ = os.environ if environ is None else environ
    values = {s.key: s.value(given.get(s.key), environ) for s in SETTINGS}
    return Deployment(**values, amqp_urls=named_urls(given.get("amqp_urls"), environ))


def named_urls(given: Mapping[str, str] | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Each named connection's URL: config first, then ``BULKWORKER_AMQP_URL_<NAME>``."""
    urls = {}
    for variable, raw in environ.items():
        name = variable.removeprefix(NAMED_URL_PREFIX)
        if name != variable and name and raw:
            urls[name.lower()] = amqp_urls(variable, raw)
    for name, raw in (given or {}).items():
        urls[str(name).lower()] = amqp_urls(f"config.amqp_urls.{name}", str(raw))
    return urls


def url_variable(connection: str) -> str:
    """The environment variable that gives ``connection`` its URL."""
    if connection == DEFAULT_CONNECTION:
        return "BULKWORKER_AMQP_URL"
    return f"{NAMED_URL_PREFIX}{connection.upper()}"


def load_environment(
    config: providers.Configuration, environ: Mapping[str, str] | None = None
) -> Deployment:
    """Resolve the settings from ``config`` and the environment, and show them in ``config``.

    Values set on ``config`` in code (``container.config.amqp_url.from_value(...)``)
    are kept: they win over the environment.
    """
    deployment = resolve_deployment(config(), environ)
    show_in(config, deployment)
    return deployment


def show_in(config: providers.Configuration, deployment: Deployment) -> None:
    """Set each setting ``config`` does not have yet, so that ``config`` shows what is used."""
    for key, value in attrs.asdict(deployment).items():
        if config.get(key) is None:
            config.set(key, value)


def deployment_of(container: Any) -> Deployment:
    """The container's deployment settings, resolved once; its ``config`` shows them too.

    A container without a ``settings`` provider (any dependency-injector
    container with a ``config``) has them resolved from its ``config`` here.
    """
    settings = getattr(container, "settings", None)
    deployment: Deployment = (
        settings() if settings is not None else resolve_deployment(container.config())
    )
    show_in(container.config, deployment)
    return deployment

"""RabbitMQ URLs: checked, split into a cluster's nodes, and redacted for logs."""

import re

from yarl import URL

from framework.errors import ConfigurationError

AMQP_SCHEMES = ("amqp", "amqps")
URL_FORM = "amqp://user:password@host:5672/vhost"
# The password of a URL, whether or not the rest of it parses: up to the last
# "@" before the path (a raw "@" in a password is not unusual).
PASSWORD = re.compile(r"(://[^:/@,]*:)[^/,]*@")


def redact(url: str) -> str:
    """``url`` (one or several, comma-separated) with every password masked."""
    return PASSWORD.sub(r"\1******@", url)


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

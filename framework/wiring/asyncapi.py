"""The AsyncAPI document of an application: its consumers as they would run, on its brokers.

The same source and container as :class:`~framework.Orchestrator` takes; the
deployment settings (the connections' URLs) come from the container's config
and the environment, as they do for a run.
"""

import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from framework.amqp.asyncapi import Connection, Consumer, document_of
from framework.config.deployment import url_variable
from framework.core.consumer import BulkConsumer
from framework.wiring.assembly import Plan, plan
from framework.wiring.container import Container
from framework.wiring.discovery import ConsumerSource

UNVERSIONED = "unversioned"


def asyncapi_document(
    consumers: ConsumerSource = "consumers",
    container: Any = None,
    *,
    title: str,
    version: str,
    description: str = "",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``consumers``, as JSON-ready dicts and lists.

    A server per broker node of each connection the consumers name (host, port
    and vhost; never the user or the password), a channel per queue they read
    and per dead-letter and retry queue, with AMQP bindings, a ``receive``
    operation per consumer and queue with its settings as ``x-bulkworker-``
    fields, and each consumer's message, its payload the JSON Schema of its
    ``model``. A connection whose URL is not set becomes a server whose host is
    a variable. Nothing connects to a broker.

    Args:
        consumers: a package or module name, a module, or consumer classes, as
            :class:`~framework.Orchestrator` takes them.
        container: the container whose config gives the connections' URLs
            (default: a new :class:`~framework.Container`).
        title: the application's name, for ``info.title``.
        version: the application's version, for ``info.version``.
        description: a longer text for ``info.description``.

    Raises:
        ConsumerDefinitionError: a consumer's settings are invalid.
        ConfigurationError: a connection's URL is not a RabbitMQ URL.
    """
    found = plan(consumers, container if container is not None else Container(), False)
    return document_of(
        described(found), connections(found), title=title, version=version,
        description=description,
    )  # fmt: skip


def described(found: Plan) -> list[Consumer]:
    return [
        Consumer(settings=settings, summary=summary(consumer))
        for consumer, settings in zip(found.classes, found.settings, strict=True)
    ]


def connections(found: Plan) -> Sequence[Connection]:
    names = sorted({settings.connection for settings in found.settings})
    return [
        Connection(name=name, url=found.deployment.url_for(name), variable=url_variable(name))
        for name in names
    ]


def summary(consumer: type[BulkConsumer]) -> str:
    """The first paragraph of the class's own docstring (not one it inherits)."""
    text = consumer.__dict__.get("__doc__") or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def package_version(package: str) -> str:
    """``package.__version__``, else the version of the distribution that installs it."""
    version = getattr(sys.modules.get(package), "__version__", None)
    if isinstance(version, str):
        return version
    for distribution in metadata.packages_distributions().get(package, []):
        return metadata.version(distribution)
    return UNVERSIONED

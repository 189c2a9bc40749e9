"""The dependency-injector container every application starts from."""

from typing import Any

from dependency_injector import containers, providers

from framework.amqp.urls import redact
from framework.config.deployment import resolve_deployment
from framework.wiring.resources import (
    open_connection,
    open_connections,
    open_logger,
    open_publisher,
    open_publishers,
)


class Container(containers.DeclarativeContainer):
    """Providers the framework and consumers share; subclass it to add your own.

    ``settings`` is the deployment settings (:class:`framework.config.deployment.Deployment`),
    resolved once from ``config`` (values set in code), else the environment, else
    the defaults; an Orchestrator shows them in ``config`` when it starts.
    ``connection`` consumes; ``publisher`` has a connection of its own, so a
    broker alarm that blocks publishing never blocks acks. Both depend directly
    on ``logger``, so shutting resources down closes them before the logger.
    ``connections`` and ``publishers`` give those of a named connection
    (``await publishers.of("analytics")``; its URL from
    ``BULKWORKER_AMQP_URL_ANALYTICS``), each opened when first asked for.
    """

    config = providers.Configuration()
    settings = providers.Singleton(resolve_deployment, config)
    logger = providers.Resource(open_logger, settings=settings)
    connection = providers.Resource(open_connection, settings=settings, logger=logger)
    publisher = providers.Resource(open_publisher, settings=settings, logger=logger)
    connections = providers.Resource(
        open_connections, settings=settings, logger=logger, default=connection
    )
    publishers = providers.Resource(
        open_publishers, settings=settings, logger=logger, default=publisher
    )
    state = providers.Singleton[dict[str, Any]](dict)


__all__ = ["Container", "open_connection", "redact"]

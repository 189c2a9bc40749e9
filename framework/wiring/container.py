"""The dependency-injector container every application starts from."""

import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

from dependency_injector import containers, providers

from framework.amqp.urls import redact
from framework.config.deployment import resolve_deployment
from framework.sinks.pool import pool_of
from framework.wiring.resources import (
    open_connection,
    open_connections,
    open_logger,
    open_postgres,
    open_publisher,
    open_publishers,
)
from framework.wiring.sink_clients import client_of, open_sink_clients

T = TypeVar("T")


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
    ``postgres`` is an ``asyncpg.Pool`` on ``BULKWORKER_POSTGRES_DSN`` (the
    ``postgres`` extra), made when a consumer or task first asks for it and
    closed on shutdown before the logger.
    ``elasticsearch`` and ``mongodb`` give an ``AsyncElasticsearch`` and a
    pymongo ``AsyncMongoClient`` on ``BULKWORKER_ELASTICSEARCH_URL`` and
    ``BULKWORKER_MONGODB_URL``, opened the first time a consumer asks for one
    (``es: AsyncElasticsearch = Provide["elasticsearch"]``) and closed on shutdown.
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
    sink_clients = providers.Resource(open_sink_clients, settings=settings)
    elasticsearch = providers.Coroutine(client_of, sink_clients, "elasticsearch")
    mongodb = providers.Coroutine(client_of, sink_clients, "mongodb")
    state = providers.Singleton[dict[str, Any]](dict)
    postgres_on_demand = providers.Resource(open_postgres, settings=settings)
    postgres = providers.Singleton(pool_of, postgres_on_demand)


async def resolve(value: "T | Awaitable[T]") -> T:
    """Await ``value`` if a provider handed back an awaitable (async resources do)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def open_resources(container: containers.Container) -> None:
    """Start the container's resources one after another; the first that fails stops the rest.

    dependency-injector's ``init_resources()`` starts them all at once
    (``asyncio.gather``): when one fails, the starts still running are cancelled
    mid-way, and dependency-injector's own callbacks then report those
    cancelled futures on the event loop ("Exception in callback ..."), beside
    the one error that matters. They start in the order the container declares
    them (the logger, then the consuming connection …); a resource's own
    dependencies still start first.
    """
    for provider in container.providers.values():
        if isinstance(provider, providers.Resource):
            await resolve(provider.init())


__all__ = ["Container", "open_connection", "open_resources", "redact", "resolve"]

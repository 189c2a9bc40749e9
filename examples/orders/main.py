"""The orders application's container and orchestrator: ``bulkworker run`` takes it as it is."""

import os

from aio_pika.abc import AbstractRobustConnection
from dependency_injector import providers
from dependency_injector.wiring import Provide

from examples.orders.consumers import EVENTS_QUEUE
from examples.orders.repository import OrderRepository, open_repository
from framework import Container, Orchestrator


class OrdersContainer(Container):
    app_settings = providers.Object(
        {"database": os.environ.get("ORDERS_DATABASE", "orders.db"), "events_queue": EVENTS_QUEUE}
    )
    repository = providers.Resource(open_repository, path=app_settings.provided["database"])


orchestrator = Orchestrator("examples.orders.consumers", OrdersContainer())


@orchestrator.on_startup
async def prepare(
    repository: OrderRepository = Provide["repository"],
    connection: AbstractRobustConnection = Provide["connection"],
) -> None:
    """Create the table and the events queue before the first order is handled."""
    repository.create_schema()
    channel = await connection.channel()
    await channel.declare_queue(EVENTS_QUEUE, durable=True)
    await channel.close()

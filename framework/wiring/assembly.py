"""From consumer classes to what runs them: the one path the orchestrator, the harness and
the ``bulkworker`` command share.

1. :func:`plan` resolves the deployment settings once and each class's
   :class:`~framework.core.consumer.ConsumerSettings` (validated, with the
   deployment's flush interval for classes that set none);
2. :func:`build_handlers` instantiates each class with its services and gives
   the handler its engine calls;
3. the caller builds the engine around each handler with its clock, log and
   publisher: :class:`~framework.runtime.runner.ConsumerRunner` on a broker,
   the harness in memory.
"""

from collections.abc import Sequence
from typing import Any

import attrs

from framework.config.deployment import Deployment, deployment_of, url_variable
from framework.core.abc import Handler
from framework.core.consumer import BulkConsumer, ConsumerSettings
from framework.core.periodic import PeriodicTask, TaskSettings
from framework.errors import ConsumerDefinitionError
from framework.wiring.discovery import ConsumerSource, discover_all
from framework.wiring.injection import build_consumer


@attrs.frozen
class Plan:
    """The consumer and task classes to run, their settings, and the deployment's settings."""

    deployment: Deployment
    classes: tuple[type[BulkConsumer], ...]
    settings: tuple[ConsumerSettings, ...]
    tasks: tuple[type[PeriodicTask], ...] = ()
    task_settings: tuple[TaskSettings, ...] = ()


def plan(source: ConsumerSource, container: Any, check_connections: bool = True) -> Plan:
    """Discover the consumers and tasks of ``source`` and resolve every setting they run with.

    A consumer naming a connection that has no URL fails here, before anything
    connects (unless ``check_connections`` is False: the harness connects nowhere).
    """
    consumers, tasks = discover_all(source)
    deployment = deployment_of(container)
    settings = tuple(ConsumerSettings.of(cls, deployment.flush_interval) for cls in consumers)
    if check_connections:
        for consumer in settings:
            check_connection(consumer, deployment)
    for consumer in settings:
        check_stream_workers(consumer, deployment)
    task_settings = tuple(TaskSettings.of(task) for task in tasks)
    return Plan(deployment, tuple(consumers), settings, tuple(tasks), task_settings)


def check_connection(consumer: ConsumerSettings, deployment: Deployment) -> None:
    if deployment.url_for(consumer.connection) is None:
        raise ConsumerDefinitionError(
            f"{consumer.name}.connection is {consumer.connection!r}, but "
            f"{url_variable(consumer.connection)} is not set: set it to that connection's "
            "RabbitMQ URL"
        )


def check_stream_workers(consumer: ConsumerSettings, deployment: Deployment) -> None:
    """Every worker would read a whole stream: each message would be handled once per worker."""
    if consumer.reads_stream and deployment.workers > 1:
        raise ConsumerDefinitionError(
            f"{consumer.name} reads a stream, and every one of the {deployment.workers} "
            "workers would read and handle every message of it: run it with --workers 1 "
            "(a deployment of its own), or give each worker a stream of its own"
        )


async def build_handlers(classes: Sequence[type[BulkConsumer]], container: Any) -> list[Handler]:
    """Each class instantiated with its services, as the handler its engine calls."""
    return [(await build_consumer(cls, container))[1] for cls in classes]

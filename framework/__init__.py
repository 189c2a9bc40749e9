"""bulkworker: class-based bulk consumers for RabbitMQ.

The package is layers; a module imports only from its own folder, the
folders below it, and ``framework.errors`` (tests/test_architecture.py checks it):

- ``framework.core``: the consumer declaration, messages, outcomes, settlement and
  the bulk engine. Pure asyncio: no AMQP client, logger or container library.
  Its interfaces to the outside are in ``framework.core.abc``.
- ``framework.amqp``: everything that talks to RabbitMQ (aio-pika, aiormq):
  connections, the subscription that feeds an engine, queue declarations, the
  publisher, dead-letter queues. ``framework.sinks``: writing bulks to stores:
  per-item outcomes, the PostgreSQL writer and the bulk inbox (asyncpg,
  imported on first use).
- ``framework.config``: the deployment settings and their parsing.
- ``framework.observe``: the log, metrics, tracing, loop lag, health, HTTP probes.
- ``framework.wiring``: the container, its resources, injection, hooks, checks,
  discovery, and the one path from classes to handlers (assembly).
- ``framework.runtime``: the orchestrator, the per-consumer runner, the
  supervisor of ``--workers N``, the shutdown budget and the process.
- ``framework.cli`` (the ``bulkworker`` command) and ``framework.testing``
  (fakes, the consumer harness, the pytest plugin) sit on top.

The names below are the public API. Those of the upper layers are imported on
first use, so that ``import framework.core`` stays free of client libraries.
"""

import importlib
from typing import TYPE_CHECKING, Any

from framework.core.actions import Actions
from framework.core.consumer import BulkConsumer, ConsumerSettings
from framework.core.message import Message
from framework.core.periodic import PeriodicTask
from framework.core.serialization import json_converter
from framework.core.watch import Watcher
from framework.errors import (
    BrokerUnreachableError,
    BulkworkerError,
    ConfigurationError,
    ConsumerDefinitionError,
    DecodeError,
    DiscoveryError,
    ExitRequestedError,
    HandlerTimeoutError,
    HookDefinitionError,
    PublishError,
    QueueError,
    SerializationError,
    SinkUnavailable,
    StreamStartError,
    UnroutableError,
    WorkerCrashedError,
)
from framework.sinks.items import ItemOutcome, ItemResult, settle_items

if TYPE_CHECKING:
    from framework.amqp.publisher import Publisher
    from framework.runtime.orchestrator import Orchestrator
    from framework.sinks.inbox import BulkInbox, InboxPruning
    from framework.sinks.postgres import PostgresSink
    from framework.wiring.asyncapi import asyncapi_document
    from framework.wiring.container import Container

# Public names of the upper layers, and the module each comes from.
LAZY = {
    "Publisher": "framework.amqp.publisher",
    "Container": "framework.wiring.container",
    "Orchestrator": "framework.runtime.orchestrator",
    # The PostgreSQL adapter needs asyncpg: framework.sinks says which extra to install.
    "PostgresSink": "framework.sinks",
    "BulkInbox": "framework.sinks",
    "InboxPruning": "framework.sinks",
    "asyncapi_document": "framework.wiring.asyncapi",
}


def __getattr__(name: str) -> Any:
    if name in LAZY:
        value = getattr(importlib.import_module(LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'framework' has no attribute {name!r}")


__all__ = [
    "Actions",
    "BrokerUnreachableError",
    "BulkConsumer",
    "BulkInbox",
    "BulkworkerError",
    "ConfigurationError",
    "ConsumerDefinitionError",
    "ConsumerSettings",
    "Container",
    "DecodeError",
    "DiscoveryError",
    "ExitRequestedError",
    "HandlerTimeoutError",
    "HookDefinitionError",
    "InboxPruning",
    "ItemOutcome",
    "ItemResult",
    "Message",
    "Orchestrator",
    "PeriodicTask",
    "PostgresSink",
    "PublishError",
    "Publisher",
    "QueueError",
    "SerializationError",
    "SinkUnavailable",
    "StreamStartError",
    "UnroutableError",
    "Watcher",
    "WorkerCrashedError",
    "asyncapi_document",
    "json_converter",
    "settle_items",
]

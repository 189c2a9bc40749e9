"""bulkworker: class-based bulk consumers for RabbitMQ."""

from framework.actions import Actions
from framework.consumer import BulkConsumer, ConsumerSettings
from framework.container import Container
from framework.errors import (
    BrokerUnreachableError,
    BulkworkerError,
    ConfigurationError,
    ConsumerDefinitionError,
    DecodeError,
    DiscoveryError,
    HandlerTimeoutError,
    PublishError,
    QueueError,
    UnroutableError,
)
from framework.message import Message
from framework.orchestrator import Orchestrator, WorkerCrashedError
from framework.publisher import Publisher

__all__ = [
    "Actions",
    "BrokerUnreachableError",
    "BulkConsumer",
    "BulkworkerError",
    "ConfigurationError",
    "ConsumerDefinitionError",
    "ConsumerSettings",
    "Container",
    "DecodeError",
    "DiscoveryError",
    "HandlerTimeoutError",
    "Message",
    "Orchestrator",
    "PublishError",
    "Publisher",
    "QueueError",
    "UnroutableError",
    "WorkerCrashedError",
]

"""bulkworker: class-based bulk consumers for RabbitMQ."""

from framework.amqp.publisher import Publisher
from framework.core.actions import Actions
from framework.core.consumer import BulkConsumer, ConsumerSettings
from framework.core.message import Message
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
from framework.runtime.container import Container
from framework.runtime.orchestrator import Orchestrator, WorkerCrashedError

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

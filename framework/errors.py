"""Every error bulkworker raises on purpose, under one root."""


class BulkworkerError(Exception):
    """Root of bulkworker's own errors; catch it to catch them all."""


class ConsumerDefinitionError(BulkworkerError, TypeError):
    """A consumer class is declared wrongly; the message names the class and attribute."""


class ConfigurationError(BulkworkerError, ValueError):
    """A setting (environment variable or container option) has an invalid value."""


class DiscoveryError(BulkworkerError, ImportError):
    """The consumers to run could not be found or imported."""


class BrokerUnreachableError(BulkworkerError, ConnectionError):
    """RabbitMQ did not accept a connection at the configured URL."""


class QueueError(BulkworkerError, LookupError):
    """A queue is missing, declared differently, or not accessible."""


class BrokerPluginError(QueueError):
    """The broker lacks a plugin a consumer needs (the message says how to enable it)."""


class PartitionKeyError(BulkworkerError, ValueError):
    """A message cannot be routed to a partition: no usable key, or no partitions to route to."""


class DecodeError(BulkworkerError, ValueError):
    """A message body does not match its content type, decoder or model.

    ``reason`` is ``"undecodable"`` (not the format it claims) or ``"invalid"``
    (the format is right, the content does not fit the consumer's model).
    """

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


class PublishError(BulkworkerError, ConnectionError):
    """The broker did not confirm a published message (nacked, or returned unroutable)."""


class UnroutableError(PublishError):
    """The broker returned a mandatory message: nothing is bound to its routing key.

    On the default exchange that means the queue named by the routing key does not exist.
    """


class SerializationError(BulkworkerError, TypeError):
    """A body to publish holds a value JSON cannot carry; the message gives its path.

    Raised before anything is sent, so nothing half-published needs undoing.
    """


class HandlerTimeoutError(BulkworkerError, TimeoutError):
    """``handle`` ran longer than the consumer's ``handler_timeout``."""


class SinkUnavailable(BulkworkerError, ConnectionError):
    """The store ``handle`` writes to cannot be reached: an outage, not a bad message.

    Raised by ``handle`` (or given to ``Message.unavailable``), it opens the
    consumer's circuit breaker: nothing is retried against ``max_retries`` or
    dead-lettered; the same messages are tried again, as a probe, after a
    capped exponential backoff, and consuming resumes once a probe succeeds.
    """


class StreamStartError(BulkworkerError, RuntimeError):
    """A stream consumer cannot tell where to start reading: its ``stored_offset`` failed.

    Raised at start (the consumer does not start rather than guess), with the
    hook's own exception as its cause.
    """


class ChannelGoneError(BulkworkerError, ConnectionError):
    """A channel closed, or stopped taking frames, while the framework was using it."""


class HookDefinitionError(BulkworkerError, TypeError):
    """A startup or shutdown hook is not an ``async def`` with parameters the framework fills."""


class WorkerCrashedError(BulkworkerError, RuntimeError):
    """A consumer's worker task ended while no stop was asked for: the consumer was dead."""


class ExitRequestedError(BulkworkerError):
    """``handle`` raised ``SystemExit`` or ``KeyboardInterrupt``: the process should exit.

    ``code`` is the exit status: ``SystemExit``'s own (``None`` is 0, an
    integer itself, anything else 1), or 130 for ``KeyboardInterrupt``.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class CheckFailedError(BulkworkerError):
    """``bulkworker check`` found problems; the table says which."""

"""What the AMQP client raises when a channel closed under us."""

from aiormq.exceptions import AMQPError, ChannelInvalidStateError

# ChannelGoneError (from framework.core.closing) is a ConnectionError, so it is among them.
CHANNEL_GONE_ERRORS = (ChannelInvalidStateError, AMQPError, ConnectionError)

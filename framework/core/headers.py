"""The message headers the framework reads and writes, each name once."""

# How many attempts at a message failed before; set on every retry and dead letter.
ATTEMPTS_HEADER = "x-bulkworker-attempts"
# Why a message was dead-lettered: rejected, exception, undecodable, invalid, retries-exhausted.
REASON_HEADER = "x-bulkworker-reason"
# The exception or decoding error, as text (at most 1,000 characters).
ERROR_HEADER = "x-bulkworker-error"
# The queue the message was consumed from, and the consumer class that moved it.
QUEUE_HEADER = "x-bulkworker-queue"
CONSUMER_HEADER = "x-bulkworker-consumer"
# When it was dead-lettered (UTC, ISO 8601).
TIME_HEADER = "x-bulkworker-dead-lettered-at"
# The names of the headers whose values had to be converted to be published again.
CONVERTED_HEADER = "x-bulkworker-converted"
# The names of the original's headers left out of a copy that would not fit a frame.
DROPPED_HEADER = "x-bulkworker-dropped-headers"
# The position of a delivery in a stream, set by the broker on every delivery from a stream queue.
STREAM_OFFSET_HEADER = "x-stream-offset"
# Every header the framework sets starts with it.
OWN_PREFIX = "x-bulkworker-"

# What a dead letter carries about its death: removed when it is replayed.
DEAD_LETTER_HEADERS = (
    REASON_HEADER,
    ERROR_HEADER,
    QUEUE_HEADER,
    CONSUMER_HEADER,
    TIME_HEADER,
    ATTEMPTS_HEADER,
)

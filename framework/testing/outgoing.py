"""One message on its way to the consumer under test, as both harness brokers take it."""

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class Outgoing:
    """The bytes and properties of one message for ``queue``, and the body they encode.

    ``body`` is the value the test passed, before encoding (None for a
    redelivered copy): a real broker routes a partitioned consumer's message
    by the key read from it.
    """

    raw: bytes
    queue: str
    headers: dict[str, Any]
    content_type: str | None
    message_id: str | None
    body: Any = None

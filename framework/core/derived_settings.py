"""What follows from a consumer's settings: the queues it needs, retry waits, its converter.

:class:`~framework.core.consumer_settings.ConsumerSettings` inherits these, so
that its own body is the list of settings and nothing else.
"""

from collections.abc import Mapping
from typing import Any, cast

import cattrs

from framework.core import layout
from framework.core.layout import QueueDeclaration
from framework.core.serialization import DEFAULT_CONVERTER, json_converter
from framework.core.stream import reads_stream

STRICT_KEYS_CONVERTER = json_converter(forbid_extra_keys=True)


class DerivedSettings:
    """The answers computed from the settings, for ``ConsumerSettings`` to inherit."""

    # ConsumerSettings is slotted: an empty __slots__ here keeps its instances free of a __dict__.
    __slots__ = ()

    # The settings these answers read; ConsumerSettings defines each.
    queues: tuple[str, ...]
    queue_arguments: Mapping[str, Any]
    dead_letter_queue: str | None
    max_retries: int | None
    retry_delay: float
    retry_backoff_max: float
    converter: Any
    refuse_unknown_keys: bool

    def model_converter(self) -> cattrs.BaseConverter:
        """The converter that reads bodies into ``model``."""
        if self.converter is not None:
            return cast(cattrs.BaseConverter, self.converter)
        return STRICT_KEYS_CONVERTER if self.refuse_unknown_keys else DEFAULT_CONVERTER

    def dead_letter_queue_for(self, queue: str) -> str | None:
        """Where messages of ``queue`` are dead-lettered; None: rejected to the broker."""
        return layout.dead_letter_queue(self.dead_letter_queue, queue)

    def retry_queue_for(self, queue: str) -> str | None:
        """Where retries of ``queue`` wait out ``retry_delay``; None: straight back."""
        return layout.retry_queue(queue) if self.retry_delay > 0 else None

    def declarations_for(self, queue: str) -> list[QueueDeclaration]:
        """``queue`` and what the framework needs beside it."""
        needed = [QueueDeclaration(queue, self.queue_arguments, "queue")]
        dead = self.dead_letter_queue_for(queue)
        if dead is not None:
            needed.append(QueueDeclaration(dead, {}, "dead-letter queue"))
        retry = self.retry_queue_for(queue)
        if retry is not None:
            arguments = layout.retry_queue_arguments(queue)
            needed.append(QueueDeclaration(retry, arguments, "retry queue"))
        return needed

    def declarations(self) -> list[QueueDeclaration]:
        """Every queue this consumer needs, each once (a shared dead-letter queue too)."""
        needed: dict[str, QueueDeclaration] = {}
        for queue in self.queues:
            for declaration in self.declarations_for(queue):
                needed.setdefault(declaration[0], declaration)
        return list(needed.values())

    def retry_wait(self, attempt: int) -> float:
        """Seconds retry number ``attempt`` (1 for the first) waits: doubling, capped."""
        if self.retry_delay <= 0:
            return 0.0
        doublings = min(max(attempt - 1, 0), 64)
        return float(min(self.retry_backoff_max, self.retry_delay * 2**doublings))

    @property
    def reads_stream(self) -> bool:
        """The queues are streams: read by offset, never given back (see ``core/stream.py``)."""
        return reads_stream(self.queue_arguments)

    @property
    def bounded_retries(self) -> bool:
        """False for asyncworker's behaviour: REQUEUE is a plain broker requeue."""
        return self.max_retries is not None or self.retry_delay > 0

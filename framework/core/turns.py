"""Whose turn it is: with ``group_by`` and several bulks at once, one bulk per key at a time.

``max_concurrent_bulks > 1`` hands bulks to ``handle`` side by side. Bulks of
different keys may run together; a second bulk of a key whose bulk is still
being handled waits until that one is settled, so each key's messages are
handled in the order they came. Without ``group_by``, or with one bulk at a
time, every turn is free.
"""

from collections.abc import Hashable, Set

from framework.core.consumer import ConsumerSettings
from framework.core.watch import Bulk


class KeyTurns:
    """The keys with a bulk being handled right now."""

    def __init__(self, settings: ConsumerSettings) -> None:
        self.serial = settings.group_by is not None and settings.max_concurrent_bulks > 1
        self._busy: set[Hashable] = set()

    def __repr__(self) -> str:
        return f"<KeyTurns serial={self.serial} busy={len(self._busy)}>"

    @property
    def busy(self) -> Set[Hashable]:
        """Keys whose next bulk must wait: one of theirs is being handled."""
        return self._busy

    def start(self, bulk: Bulk) -> None:
        """``bulk`` is handed to ``handle``: its key waits until :meth:`finish`."""
        if self.serial:
            self._busy.add(bulk.key)

    def finish(self, bulk: Bulk, _task: object = None) -> None:
        """``bulk`` is settled (its task is done): the next bulk of its key may go."""
        self._busy.discard(bulk.key)

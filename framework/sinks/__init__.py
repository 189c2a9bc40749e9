"""Writing bulks to a sink: per-item outcomes, and adapters for well-known stores.

A sink answers a bulk write item by item (a bulk insert's rejected rows,
Elasticsearch's ``items``, MongoDB's ``writeErrors``). :class:`ItemOutcome`
names what happened to one item and :func:`settle_items` turns those answers
into the messages' decisions, the same decisions ``Message.ack()``,
``reject()``, ``requeue()`` and ``unavailable()`` make by hand.

Adapters import their client library on first use: install the extra
(``bulkworker[postgres]`` …) for the store you use.
"""

import importlib
from typing import TYPE_CHECKING, Any

from framework.sinks.items import ItemOutcome, ItemResult, settle_item, settle_items

if TYPE_CHECKING:
    from framework.sinks.inbox import BulkInbox, InboxPruning
    from framework.sinks.postgres import PostgresSink

# Adapters, and the client library each needs (its extra).
LAZY = {
    "PostgresSink": ("framework.sinks.postgres", "postgres"),
    "BulkInbox": ("framework.sinks.inbox", "postgres"),
    "InboxPruning": ("framework.sinks.inbox", "postgres"),
}


def __getattr__(name: str) -> Any:
    if name not in LAZY:
        raise AttributeError(f"module 'framework.sinks' has no attribute {name!r}")
    module, extra = LAZY[name]
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as missing:
        raise ImportError(
            f"framework.sinks.{name} needs {missing.name}: pip install 'bulkworker[{extra}]'"
        ) from missing
    globals()[name] = value
    return value


__all__ = [
    "BulkInbox",
    "InboxPruning",
    "ItemOutcome",
    "ItemResult",
    "PostgresSink",
    "settle_item",
    "settle_items",
]

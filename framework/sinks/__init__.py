"""Writing bulks to a sink: per-item outcomes, and adapters for well-known stores.

A sink answers a bulk write item by item (a bulk insert's rejected rows,
Elasticsearch's ``items``, MongoDB's ``writeErrors``). :class:`ItemOutcome`
names what happened to one item and :func:`settle_items` turns those answers
into the messages' decisions, the same decisions ``Message.ack()``,
``reject()``, ``requeue()`` and ``unavailable()`` make by hand.

Adapters import their client library on first use: install the extra
(``bulkworker[postgres]`` …) for the store you use.
"""

from framework.sinks.items import ItemOutcome, ItemResult, settle_item, settle_items

__all__ = ["ItemOutcome", "ItemResult", "settle_item", "settle_items"]

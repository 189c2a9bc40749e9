"""Items from the ``items`` queue, written to the store one transaction per bulk."""

from collections.abc import Mapping
from typing import Any

from dependency_injector.wiring import Provide

from consumers.store import ItemStore
from framework import BulkConsumer, Message

REQUIRED_FIELDS = {"id": (str, int), "name": (str,), "price": (int, float)}


def is_valid_item(body: Any) -> bool:
    return isinstance(body, Mapping) and all(
        isinstance(body.get(field), kinds) and not isinstance(body.get(field), bool)
        for field, kinds in REQUIRED_FIELDS.items()
    )


class ItemsConsumer(BulkConsumer):
    """Stores up to 500 items per transaction; an item without id, name or price is rejected."""

    queues = ["items"]
    bulk_size = 500
    flush_interval = 2.0

    async def handle(
        self,
        messages: list[Message[Any]],
        store: ItemStore = Provide["store"],
    ) -> None:
        items = []
        for message in messages:
            if is_valid_item(message.body):
                items.append(message.body)
            else:
                # Retrying cannot fix a malformed item: refuse it alone, store the rest.
                message.reject()
        if items:
            await store.save(items)

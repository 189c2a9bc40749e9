"""The application's container: the framework's providers plus the item store."""

import os

from dependency_injector import providers

from consumers.store import open_store
from framework import Container


class AppContainer(Container):
    """Adds ``store``: the SQLite file named by ``ITEMS_DB`` (default ``items.db``)."""

    items_db = providers.Callable(os.environ.get, "ITEMS_DB", "items.db")
    store = providers.Resource(open_store, path=items_db)

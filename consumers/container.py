"""The application's container: the framework's providers plus the item store."""

import os

from dependency_injector import providers

from consumers.store import open_store
from framework import Container


class AppContainer(Container):
    """Adds ``store``: the SQLite file named by ``ITEMS_DB`` (default ``items.db``)."""

    items_db = providers.Callable(os.environ.get, "ITEMS_DB", "items.db")
    store = providers.Resource(open_store, path=items_db)


def create_container() -> AppContainer:
    """The container, built in code: ``--container consumers.container:create_container``.

    The place to fill ``config`` from the environment (``config.x.from_env(...)``)
    before any consumer starts; each worker process calls it once.
    """
    container = AppContainer()
    container.config.log_level.from_env("BULKWORKER_LOG_LEVEL", default="INFO")
    return container

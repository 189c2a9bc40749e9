"""The clients of the stores consumers write to, each opened the first time one asks for it.

``Provide["elasticsearch"]`` and ``Provide["mongodb"]`` give a client on the
URL of ``BULKWORKER_ELASTICSEARCH_URL`` / ``BULKWORKER_MONGODB_URL``. An
application that never asks for one needs neither the URL nor the client
library; the clients are closed when the container's resources shut down.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from framework.config.deployment import SETTINGS, Deployment
from framework.errors import ConfigurationError
from framework.sinks import elasticsearch, mongodb

Opener = Callable[[str], AbstractAsyncContextManager[Any]]
# name: (the client library's extra, how to open a client on a URL)
CLIENTS: dict[str, tuple[str, Opener]] = {
    "elasticsearch": ("elasticsearch", elasticsearch.open_client),
    "mongodb": ("mongodb", mongodb.open_client),
}


class SinkClients:
    """One client per store, opened on first use, closed in reverse when the pool closes."""

    def __init__(self, settings: Deployment) -> None:
        self._settings = settings
        self._opened: dict[str, Any] = {}
        self._closing = AsyncExitStack()
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<SinkClients {sorted(self._opened)}>"

    async def of(self, name: str) -> Any:
        """The client of store ``name``, opened now if it is the first time.

        Raises:
            ConfigurationError: the store's URL is not set, or its client
                library is not installed; the message says what to do.
        """
        async with self._lock:  # two consumers asking at once share one client
            if name not in self._opened:
                self._opened[name] = await self._open(name)
            return self._opened[name]

    async def _open(self, name: str) -> Any:
        extra, opener = CLIENTS[name]
        url = getattr(self._settings, f"{name}_url")
        if not url:
            raise ConfigurationError(f"the {name} client has no URL: set {url_variable(name)}")
        try:
            return await self._closing.enter_async_context(opener(url))
        except ImportError as error:
            raise ConfigurationError(
                f"the {name} client needs its library ({error.name}): "
                f"pip install 'bulkworker[{extra}]'"
            ) from None

    async def close(self) -> None:
        await self._closing.aclose()


def url_variable(name: str) -> str:
    """The environment variable that holds store ``name``'s URL."""
    return next(s.env for s in SETTINGS if s.key == f"{name}_url")


async def open_sink_clients(settings: Deployment) -> AsyncIterator[SinkClients]:
    """Container resource: the store clients, none opened yet; all closed on shutdown."""
    clients = SinkClients(settings)
    try:
        yield clients
    finally:
        await clients.close()


async def client_of(clients: SinkClients, name: str) -> Any:
    """The client of store ``name`` (what ``Provide["elasticsearch"]`` gives)."""
    return await clients.of(name)

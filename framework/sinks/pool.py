"""The container's PostgreSQL pool: opened the first time something asks for it, closed on
shutdown.

The pool is made with no connection open (``min_size=0``): a database that is
down when the worker starts is an outage for the first bulk (the consumer
pauses and probes), not a failed start. A DSN that is missing is a failed start,
naming the variable that should hold it. asyncpg is imported only then, so
applications that never ask for the pool do not need it.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from framework.errors import ConfigurationError

DSN_VARIABLE = "BULKWORKER_POSTGRES_DSN"


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``, for logs and reprs."""
    scheme, separator, rest = dsn.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not separator or not at or ":" not in credentials:
        return dsn
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


class PoolOnDemand:
    """One asyncpg pool for the DSN of the deployment, made on the first :meth:`pool` call."""

    def __init__(self, dsn: str | None, max_size: int) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        where = redact_dsn(self._dsn) if self._dsn else "no DSN"
        state = "open" if self._pool is not None else "not opened"
        return f"<PoolOnDemand {where} {state}>"

    async def pool(self) -> Any:
        """The ``asyncpg.Pool``, made now if this is the first call.

        Raises:
            ConfigurationError: no DSN is set, or asyncpg is not installed.
        """
        async with self._lock:
            if self._pool is None:
                self._pool = await self._create()
            return self._pool

    async def _create(self) -> Any:
        if not self._dsn:
            raise ConfigurationError(
                f"the container's postgres pool has no database to connect to: set {DSN_VARIABLE} "
                "(postgresql://user:password@host:5432/database) or config.postgres_dsn"
            )
        try:
            import asyncpg
        except ModuleNotFoundError:
            raise ConfigurationError(
                "the container's postgres pool needs asyncpg: pip install 'bulkworker[postgres]'"
            ) from None
        return await asyncpg.create_pool(self._dsn, min_size=0, max_size=self._max_size)

    async def close(self, within: float) -> None:
        """Close the pool if it was opened; connections still busy after ``within`` are cut."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), within)
        except TimeoutError:
            pool.terminate()


async def open_pool_on_demand(
    dsn: str | None, max_size: int, close_within: float
) -> AsyncIterator[PoolOnDemand]:
    """Container resource: the PostgreSQL pool, opened on first use, closed on shutdown."""
    pools = PoolOnDemand(dsn, max_size)
    try:
        yield pools
    finally:
        await pools.close(close_within)


async def pool_of(pools: PoolOnDemand) -> Any:
    """The asyncpg pool itself: what ``Provide["postgres"]`` gives."""
    return await pools.pool()

"""Startup and shutdown hooks: checked when registered, called with what they ask for.

A hook is an ``async def``. Its parameters are either injected, exactly as a
consumer's (``repository: Repository = Provide["repository"]``: async
resources are awaited, so the hook gets the object, not a future), or one
plain positional parameter that receives the container. Both may be mixed;
a hook may also take nothing at all.
"""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from dependency_injector import containers

from framework.core.abc import EventLog
from framework.errors import HookDefinitionError
from framework.wiring.injection import Resolver, marker_of

HookFunction = Callable[..., Awaitable[None]]


def hook_name(function: Callable[..., Any]) -> str:
    return getattr(function, "__qualname__", repr(function))


@attrs.frozen
class Hook:
    """A hook function and whether it takes the container as its first argument."""

    function: HookFunction
    takes_container: bool

    @property
    def name(self) -> str:
        return hook_name(self.function)

    @classmethod
    def of(cls, function: HookFunction) -> "Hook":
        """Check ``function``'s shape; raise :class:`HookDefinitionError` naming what is wrong."""
        name = hook_name(function)
        if not inspect.iscoroutinefunction(inspect.unwrap(function)):
            raise HookDefinitionError(
                f"hook {name} must be a coroutine function: 'async def {name}(...)'"
            )
        plain = [p for p in inspect.signature(function).parameters.values() if not injected(p)]
        if len(plain) > 1:
            raise HookDefinitionError(
                f"hook {name} parameter {plain[1].name!r} is neither the container nor "
                "injected: give it a Provide[...] marker or a default"
            )
        if plain and plain[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise HookDefinitionError(
                f"hook {name} parameter {plain[0].name!r} must be positional: it receives the "
                "container"
            )
        return cls(function, takes_container=bool(plain))

    async def call(self, container: containers.Container) -> None:
        """Resolve the hook's injections against ``container`` and run it."""
        resolver = Resolver(container)
        services = {
            injection.name: await injection.value()
            for injection in resolver.injections(self.function, f"hook {self.name}")
        }
        if self.takes_container:
            await self.function(container, **services)
        else:
            await self.function(**services)


def injected(parameter: inspect.Parameter) -> bool:
    """A parameter the hook does not need from the caller: a marker, a default, ``*args``."""
    if marker_of(parameter) is not None:
        return True
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return True
    return parameter.default is not inspect.Parameter.empty


class Hooks:
    """An orchestrator's startup and shutdown hooks, in the order they were registered."""

    def __init__(self) -> None:
        self.startup: list[Hook] = []
        self.shutdown: list[Hook] = []

    def __repr__(self) -> str:
        return f"<Hooks startup={len(self.startup)} shutdown={len(self.shutdown)}>"

    def all(self) -> list[Hook]:
        """The startup hooks, then the shutdown hooks."""
        return [*self.startup, *self.shutdown]

    async def run_startup(self, container: containers.Container) -> None:
        """Run the startup hooks in order; the first that raises stops the rest."""
        for hook in self.startup:
            await hook.call(container)

    async def run_shutdown(self, container: containers.Container, log: EventLog | None) -> None:
        """Run every shutdown hook in order; one that raises is logged, the rest still run."""
        for hook in self.shutdown:
            try:
                await hook.call(container)
            except Exception as error:  # one failing cleanup must not keep the others from running
                if log is not None:
                    await log.error(f"shutdown hook {hook.name} failed", exc_info=error)

    async def run_shutdown_within(
        self, container: containers.Container, log: EventLog | None, within: float
    ) -> None:
        """:meth:`run_shutdown`, given up after ``within`` seconds (the rest are skipped)."""
        try:
            async with asyncio.timeout(within):
                await self.run_shutdown(container, log)
        except TimeoutError:
            if log is not None:
                await log.error(
                    "shutdown hooks did not finish in time: the rest were skipped",
                    extra={"seconds": within},
                )

"""Startup and shutdown hooks: checked when registered, called with what they ask for.

A hook is an ``async def``. Its parameters are either injected, exactly as a
consumer's (``repository: Repository = Provide["repository"]``: async
resources are awaited, so the hook gets the object, not a future), or one
plain positional parameter that receives the container. Both may be mixed;
a hook may also take nothing at all.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from dependency_injector import containers

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

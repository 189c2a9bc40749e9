"""Dependency injection into consumers, resolved in one typed place.

A consumer asks for services with dependency-injector markers: as defaults of
``__init__`` or ``handle`` parameters (``store: Store = Provide["store"]``, with
or without ``@inject``), in ``Annotated[...]``, or as class attributes. They are
resolved here against the running container, for any consumer class, wherever
it is defined; the consumers' modules are also wired, so ``@inject`` helpers in
them work too. A marker the container cannot resolve fails the start.
"""

import inspect
import sys
import types
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar, cast, get_args, get_origin

import attrs
from dependency_injector import containers, providers
from dependency_injector.wiring import Closing, Provide, Provider, ProvidersMap

from framework.core.abc import Handler
from framework.core.consumer import BulkConsumer
from framework.core.message import Message
from framework.core.periodic import PeriodicTask
from framework.errors import ConfigurationError, ConsumerDefinitionError

# The stubs type markers as instances; at run time they are classes.
PROVIDE = cast(type, Provide)
PROVIDER = cast(type, Provider)
CLOSING = cast(type, Closing)
MARKERS = (PROVIDE, PROVIDER, CLOSING)
# Providers that make one object for everyone who asks (resources are opened at start anyway).
SHARED = providers.BaseSingleton
T = TypeVar("T")


@attrs.frozen
class Injection:
    """One parameter or attribute and the provider that fills it."""

    name: str
    provider: Any
    gives_provider: bool

    async def value(self) -> Any:
        if self.gives_provider:
            return self.provider
        value = self.provider()
        return await value if inspect.isawaitable(value) else value


async def build_consumer(
    cls: type[BulkConsumer], container: containers.Container
) -> tuple[BulkConsumer, Handler]:
    """Instantiate ``cls`` with its services and return it with its injecting handler."""
    resolver = Resolver(container)
    per_bulk = resolver.injections(cls.handle, f"{cls.__name__}.handle")
    await make_shared(per_bulk, f"{cls.__name__}.handle")
    consumer = await instantiate(cls, resolver)
    return consumer, injecting_handler(consumer, per_bulk)


async def build_task(
    cls: type[PeriodicTask], container: containers.Container
) -> Callable[[], Awaitable[None]]:
    """Instantiate a periodic task with its services; return the call for one run."""
    resolver = Resolver(container)
    per_run = resolver.injections(cls.run, f"{cls.__name__}.run")
    await make_shared(per_run, f"{cls.__name__}.run")
    task = await instantiate(cls, resolver)

    async def run() -> None:
        # Resolved per run, so a Factory gives each run its own object.
        await task.run(**{injection.name: await injection.value() for injection in per_run})

    return run


async def instantiate(cls: type[T], resolver: "Resolver") -> T:
    """``cls`` made with its ``__init__`` injections, its injected attributes set."""
    constructor = resolver.injections(cls.__init__, f"{cls.__name__}.__init__")
    attributes = resolver.attribute_injections(cls)
    try:
        instance = cls(**{i.name: await i.value() for i in constructor})
    except TypeError as error:
        raise ConsumerDefinitionError(
            f"{cls.__name__}.__init__ cannot be called by the framework ({error}): give "
            "every parameter a Provide[...] marker or a default"
        ) from None
    for injection in attributes:
        setattr(instance, injection.name, await injection.value())
    return instance


async def make_shared(injections: list[Injection], owner: str) -> None:
    """Make the singletons a call will be given, at start.

    They are made once anyway; making them now turns a service that cannot be
    made (a database pool without its DSN) into a failed start instead of a
    failed first bulk. Factories are still called per bulk or per run.
    """
    for injection in injections:
        if injection.gives_provider or not isinstance(injection.provider, SHARED):
            continue
        try:
            await injection.value()
        except ConfigurationError as error:
            raise ConfigurationError(f"{owner} parameter {injection.name!r}: {error}") from error


def injecting_handler(consumer: BulkConsumer, injections: list[Injection]) -> Handler:
    if not injections:
        return consumer.handle

    async def handle(self: BulkConsumer, messages: list[Message[Any]]) -> None:
        # Resolved per bulk, so a Factory gives each bulk its own object.
        services = {injection.name: await injection.value() for injection in injections}
        await self.handle(messages, **services)

    # Bound, so that the engine finds the consumer's other hooks (stored_offset) as for
    # a plain ``consumer.handle``.
    return types.MethodType(handle, consumer)


class Resolver:
    """Finds markers and resolves them against one container."""

    def __init__(self, container: containers.Container) -> None:
        self._container = container
        self._map = ProvidersMap(container)

    def injections(self, function: Callable[..., Any], owner: str) -> list[Injection]:
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return []
        found = []
        for parameter in signature.parameters.values():
            marker = marker_of(parameter)
            if marker is not None:
                found.append(self._resolve(parameter.name, marker, f"{owner} parameter"))
        return found

    def attribute_injections(self, cls: type) -> list[Injection]:
        names = {name for klass in cls.__mro__ for name in vars(klass)}
        return [
            self._resolve(name, getattr(cls, name), f"{cls.__name__} attribute")
            for name in sorted(names)
            if isinstance(getattr(cls, name, None), MARKERS)
        ]

    def _resolve(self, name: str, marker: Any, where: str) -> Injection:
        if isinstance(marker, CLOSING):
            marker = cast(Any, marker).provider
        provider = self._map.resolve_provider(marker.provider, marker.modifier)
        if provider is None:
            raise ConsumerDefinitionError(
                f"{where} {name!r} asks for {describe(marker.provider)}, which "
                f"{container_name(self._container)} cannot provide: add the provider to your "
                "container and pass it with --container (or Orchestrator(container=...))"
            )
        # Provider[...] gives the provider itself: calling it gives a value.
        return Injection(name, provider, gives_provider=isinstance(marker, PROVIDER))


def marker_of(parameter: inspect.Parameter) -> Any:
    if isinstance(parameter.default, MARKERS):
        return parameter.default
    if get_origin(parameter.annotation) is Annotated:
        for extra in get_args(parameter.annotation)[1:]:
            if isinstance(extra, MARKERS):
                return extra
    return None


def container_name(container: containers.Container) -> str:
    declared = getattr(container, "declarative_parent", None) or type(container)
    return str(declared.__name__)


def describe(reference: Any) -> str:
    return repr(reference) if isinstance(reference, str) else f"provider {reference!r}"


def wire_modules(container: containers.Container, classes: Iterable[type]) -> None:
    """Wire the consumers' and tasks' modules, so ``@inject`` functions beside them work too."""
    modules = list(dict.fromkeys(sys.modules[cls.__module__] for cls in classes))
    container.wire(modules=modules)

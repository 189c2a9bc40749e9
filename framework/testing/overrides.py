"""The container providers a test harness replaces for one test, and puts back afterwards."""

import difflib
from collections.abc import Mapping
from typing import Any

from dependency_injector import providers

from framework.testing.publisher import OfflineConnection, OfflinePool, RecordingPublisher
from framework.wiring.container import Container
from framework.wiring.injection import container_name


class Overrides:
    """A test's overrides of ``container``'s providers, each undone by :meth:`restore`.

    ``harness`` names the harness in the error that says how to pass a
    container; ``default_container`` says the harness made the container
    itself, since none was passed.
    """

    def __init__(
        self,
        container: Any,
        values: Mapping[str, Any],
        *,
        harness: str,
        default_container: bool,
    ) -> None:
        self.container = container
        self.values = dict(values)
        self.harness = harness
        self.default_container = default_container
        self.overridden: list[str] = []

    def __repr__(self) -> str:
        return f"<Overrides of {container_name(self.container)} overridden={len(self.overridden)}>"

    def apply(self) -> None:
        """Override each provider the test named; a name the container lacks is a KeyError,
        raised before any provider is overridden."""
        missing = [name for name in self.values if getattr(self.container, name, None) is None]
        if missing:
            raise KeyError(self._no_provider(missing[0]))
        for name, value in self.values.items():
            self._override(name, value)

    def go_offline(self, publisher: RecordingPublisher) -> None:
        """What connects to RabbitMQ, replaced by what records (unless the test did)."""
        offline = OfflineConnection(publisher)
        stand_ins = {
            "publisher": publisher,
            "connection": offline,
            "publishers": OfflinePool(publisher),
            "connections": OfflinePool(offline),
        }
        for name, value in stand_ins.items():
            if name not in self.values and getattr(self.container, name, None) is not None:
                self._override(name, value)

    def restore(self) -> None:
        """Every provider overridden so far, back to what the container declares."""
        for name in self.overridden:
            getattr(self.container, name).reset_override()
        self.overridden = []

    def _override(self, name: str, value: Any) -> None:
        getattr(self.container, name).override(providers.Object(value))
        self.overridden.append(name)

    def _no_provider(self, name: str) -> str:
        """Why ``name`` cannot be overridden, and what to pass instead."""
        known = sorted(getattr(self.container, "providers", {}))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if self.default_container:
            return (
                f"the container has no provider {name!r} to override{hint}: with no container= "
                f"argument the harness uses the default container, {Container.__module__}."
                f"{Container.__name__}, which knows only the framework's own providers; pass "
                f"your container: {self.harness}(..., container=YourContainer(), "
                f"overrides={{{name!r}: ...}})"
            )
        owner = container_name(self.container)
        return f"the container ({owner}) has no provider {name!r} to override{hint}"
